/**
 * run.ts's handle on the good client (good-client.ts in a child process): start it and wait
 * until it is connected and its first echo came back, mark the start of the attack, and
 * collect its report at the end. Every wait has a deadline; a client that does not answer
 * is killed and reported as such.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { GoodClientMessage, GoodClientReport } from './good-client';
import { sleep } from './timing';

const READY_TIMEOUT_MS = 15_000;
/** The client's own grace for streams in flight is 5 s; this covers it and the report. */
const REPORT_TIMEOUT_MS = 10_000;

export class GoodClientProcess {
  private constructor(
    private readonly child: ChildProcess,
    /** False when it was not connected and echoing within READY_TIMEOUT_MS. */
    readonly ready: boolean,
  ) {}

  /** Starts the client against `port`, echoing on streams with `echoMeta`. */
  static async start(port: number, echoMeta: object): Promise<GoodClientProcess> {
    const child = fork(path.join(__dirname, 'good-client.ts'), [String(port), JSON.stringify(echoMeta)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => child.on('message', (m: GoodClientMessage) => m.type === 'ready' && resolve(true))),
      new Promise<boolean>((resolve) => child.once('exit', () => resolve(false))),
      sleep(READY_TIMEOUT_MS).then(() => false),
    ]);
    return new GoodClientProcess(child, ready);
  }

  /** The attack starts now: the client's figures count from here. */
  begin(): void {
    if (this.child.connected) this.child.send({ type: 'begin' });
  }

  /** Stops the client and returns its report (null if it gave none in time). */
  async stop(): Promise<GoodClientReport | null> {
    let report: GoodClientReport | null = null;
    if (this.child.connected) {
      const answered = new Promise<void>((resolve) =>
        this.child.on('message', (m: GoodClientMessage) => {
          if (m.type !== 'report') return;
          report = m.report;
          resolve();
        }),
      );
      this.child.send({ type: 'stop' });
      await Promise.race([answered, sleep(REPORT_TIMEOUT_MS)]);
    }
    this.child.kill('SIGKILL');
    return report;
  }
}
