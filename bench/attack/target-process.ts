/**
 * run.ts's handle on one target (target.ts in a child process): starts it, keeps its memory
 * samples, kills it when its resident memory passes the cap, notices when it dies, and stops
 * it. The cap is enforced from /proc by this process, every SAMPLE_MS, because a server that
 * is drowning in garbage collection no longer reports anything itself.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { readProc, type ProcReading } from './proc';
import type { TargetMessage, TargetMetas, TargetSample } from './target';
import { sleep } from './timing';

export type TargetKind = 'echo' | 'serve';

const SAMPLE_MS = 250;
const READY_TIMEOUT_MS = 20_000;
/** The heap ceiling of every target (also `tsmux serve`'s): above the RSS cap, so the cap normally trips first. */
const MAX_OLD_SPACE_MB = 4096;

/** One sample: /proc figures taken here, or the target's own report (heap figures). */
export interface Sample extends Partial<ProcReading> {
  /** `Date.now()` when taken. */
  at: number;
  source: 'proc' | 'self';
  heapUsed?: number | null;
  external?: number | null;
  arrayBuffers?: number | null;
  afterGc?: boolean;
}

/** Why a target is gone before it was stopped. */
export interface TargetGone {
  reason: 'died' | 'exceeded';
  /** For the table: "exit 134 (SIGABRT)", "RSS cap exceeded (3,100 > 3,072 MiB)". */
  text: string;
  /** `Date.now()` when it was noticed. */
  at: number;
  /** The end of the server's stderr (the V8 heap report, a stack trace). */
  stderr: string;
}

// Every target still running, so that an interrupted run leaves none behind.
const running = new Set<TargetProcess>();
process.on('exit', () => {
  for (const target of running) target.kill();
});

export class TargetProcess {
  readonly samples: Sample[] = [];
  gone: TargetGone | null = null;
  /** Resolves when the target dies or is killed for its memory (never when it is stopped). */
  readonly whenGone: Promise<TargetGone>;
  private signalGone!: (gone: TargetGone) => void;
  private stopping = false;
  private stderr = '';
  private watchdog: NodeJS.Timeout | null = null;
  port = 0;
  serverPid = 0;
  metas: TargetMetas = { echo: {}, hold: {} };

  private constructor(
    readonly kind: TargetKind,
    private readonly child: ChildProcess,
    private readonly rssCap: number,
  ) {
    this.whenGone = new Promise((resolve) => (this.signalGone = resolve));
    running.add(this);
  }

  /** Starts a target of `kind` and waits until it listens; throws if it does not within 20 s. */
  static async start(kind: TargetKind, rssCapBytes: number): Promise<TargetProcess> {
    const child = fork(path.join(__dirname, 'target.ts'), [kind], {
      execArgv: [`--max-old-space-size=${MAX_OLD_SPACE_MB}`, '--expose-gc', '--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Its own process group: `tsmux serve` (its child) goes down with it in one kill.
      detached: true,
    });
    const target = new TargetProcess(kind, child, rssCapBytes);
    child.stdout!.resume(); // nothing to see, but a full pipe would block the target
    child.stderr!.on('data', (chunk: Buffer) => {
      target.stderr = (target.stderr + chunk.toString()).slice(-4000);
    });
    child.on('message', (message: TargetMessage) => target.onMessage(message));
    child.once('exit', (code, signal) => target.onExit(code, signal));
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => child.on('message', (m: TargetMessage) => m.type === 'ready' && resolve(true))),
      target.whenGone.then(() => false),
      sleep(READY_TIMEOUT_MS).then(() => false),
    ]);
    if (!ready) {
      target.kill();
      throw new Error(`the ${kind} target did not start: ${target.gone?.text ?? 'no answer in 20 s'}\n${target.stderr}`);
    }
    target.watchdog = setInterval(() => target.watch(), SAMPLE_MS);
    target.watch();
    return target;
  }

  /** The latest /proc reading of the server. */
  latest(): Sample | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) if (this.samples[i].source === 'proc') return this.samples[i];
    return undefined;
  }

  /**
   * Asks for a full garbage collection and a sample right after it (echo target; `serve`
   * just samples), waits at most `ms` for it, and returns it with a fresh /proc reading.
   */
  async settle(ms = 3000): Promise<{ self: Sample | null; proc: Sample }> {
    let self: Sample | null = null;
    if (!this.gone && this.child.connected) {
      const answered = new Promise<void>((resolve) => {
        const onMessage = (message: TargetMessage): void => {
          if (message.type !== 'sample' || message.sample.afterGc === undefined) return;
          this.child.off('message', onMessage);
          self = fromSelf(message.sample);
          resolve();
        };
        this.child.on('message', onMessage);
      });
      this.child.send({ type: 'gc' });
      await Promise.race([answered, sleep(ms)]);
    }
    return { self, proc: this.watch() };
  }

  /** Stops the target (politely, then by force) and waits until it is gone. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      if (this.child.connected) this.child.send({ type: 'stop' });
      await Promise.race([exited, sleep(3000)]);
      this.kill();
      await Promise.race([exited, sleep(2000)]);
    }
    this.kill(); // the group: a `tsmux serve` whose parent died is still in it
    running.delete(this);
  }

  /** SIGKILL to the target's process group. */
  kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  private watch(): Sample {
    const reading = readProc(this.serverPid || this.child.pid!);
    const sample: Sample = { at: Date.now(), source: 'proc', ...reading };
    if (reading.rss !== null) this.samples.push(sample);
    if (!this.gone && !this.stopping && reading.rss !== null && reading.rss > this.rssCap) {
      this.kill();
      this.markGone('exceeded', `RSS cap exceeded (${mib(reading.rss)} > ${mib(this.rssCap)} MiB)`);
    }
    return sample;
  }

  private onMessage(message: TargetMessage): void {
    if (message.type === 'ready') {
      this.port = message.port;
      this.serverPid = message.serverPid;
      this.metas = message.metas;
    } else if (message.type === 'sample') {
      this.samples.push(fromSelf(message.sample));
    } else if (message.type === 'server-exit' && !this.stopping) {
      this.stderr = message.stderr;
      this.markGone('died', describeExit(message.code, message.signal));
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (!this.stopping) this.markGone('died', describeExit(code, signal));
  }

  private markGone(reason: TargetGone['reason'], text: string): void {
    if (this.gone) return;
    this.gone = { reason, text, at: Date.now(), stderr: this.stderr };
    this.signalGone(this.gone);
  }
}

function fromSelf(sample: TargetSample): Sample {
  return {
    at: sample.at,
    source: 'self',
    rss: sample.rss,
    heapUsed: sample.heapUsed,
    external: sample.external,
    arrayBuffers: sample.arrayBuffers,
    cpuMs: sample.cpuMs,
    afterGc: sample.afterGc,
  };
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGBUS: 7, SIGILL: 4 };

/** "exit 1", or "exit 134 (SIGABRT)" as a shell shows a signal. */
function describeExit(code: number | null, signal: string | null): string {
  if (signal) return SIGNAL_NUMBERS[signal] ? `exit ${128 + SIGNAL_NUMBERS[signal]} (${signal})` : `killed by ${signal}`;
  return `exit ${code ?? '?'}`;
}

function mib(bytes: number): string {
  return Math.round(bytes / 1048576).toLocaleString('en-US');
}
