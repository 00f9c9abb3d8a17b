/**
 * The well-behaved client that runs beside every attack: what a legitimate user of the
 * server sees while it is attacked. A child process (`fork`, `node good-client.ts PORT
 * ECHO_META_JSON`), so that the attacker's busy event loop in run.ts does not show up as
 * the server's latency.
 *
 * It connects before the attack starts (a connection cap added later must not simply lock
 * it out), then pings every PING_MS and records the round trips, and runs echo streams of
 * random sizes (1 KiB to 1 MiB), checking with SHA-256 that every byte came back. A dropped
 * connection is made again, and counted.
 *
 * IPC: sends `ready` once connected and one echo came back right; on `begin` it resets its
 * figures (the attack starts), on `stop` it lets the streams in flight finish (at most
 * STOP_GRACE_MS), sends `report` and exits.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { MuxClient, type MuxStream } from '../../dist/cjs/index'; // the build users run (`npm run attacks` builds first)
import { percentiles, sleep } from './timing';

const HOST = '127.0.0.1';
const PING_MS = 20;
const ECHO_WORKERS = 2;
const MIN_ECHO = 1024;
const MAX_ECHO = 1024 * 1024;
/** An echo of at most 1 MiB on loopback takes milliseconds; this long means the server failed it. */
const ECHO_TIMEOUT_MS = 15_000;
const RECONNECT_MS = 250;
const STOP_GRACE_MS = 5000;

/** What the good client saw. */
export interface GoodClientReport {
  pings: {
    answered: number;
    /** Rejected: the connection went away under them. */
    failed: number;
    /** A ping still unanswered at the end counts with its age so far (a stall shows in max). */
    unansweredAtEnd: number;
    rttMs: { median: number; p99: number; max: number } | null;
  };
  echo: {
    ok: number;
    failed: number;
    /** Failures by error code. */
    failures: Record<string, number>;
    /** Payload bytes sent and checked on the way back. */
    bytes: number;
    /** Bytes that came back different, or missing or extra in a stream that ended normally. */
    corruptedBytes: number;
  };
  /** Connections made again after one was lost. */
  reconnects: number;
  /** Connects that failed (server gone or refusing). */
  connectFailures: number;
}

/** Messages the good client sends run.ts. */
export type GoodClientMessage = { type: 'ready' } | { type: 'report'; report: GoodClientReport };

class GoodClient {
  private client: MuxClient | null = null;
  private ready = false;
  private everReady = false;
  private stopping = false;
  private outstandingPing: number | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private rtts: number[] = [];
  private report: GoodClientReport = emptyReport();
  private readonly workers: Promise<void>[] = [];
  private readonly inFlight = new Set<MuxStream>();
  private readonly meta: unknown;

  constructor(
    private readonly port: number,
    meta: unknown,
    private readonly onFirstEcho: () => void,
  ) {
    this.meta = meta;
  }

  start(): void {
    this.connect();
    this.pinger = setInterval(() => this.ping(), PING_MS);
    for (let i = 0; i < ECHO_WORKERS; i++) this.workers.push(this.echoLoop());
  }

  /** The attack starts: figures from now on. */
  begin(): void {
    this.report = emptyReport();
    this.rtts = [];
  }

  async stop(): Promise<GoodClientReport> {
    this.stopping = true;
    if (this.pinger) clearInterval(this.pinger);
    const finished = await Promise.race([Promise.all(this.workers).then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
    if (!finished) {
      for (const stream of this.inFlight) stream.destroy(new Error('unfinished at the end'));
      await Promise.race([Promise.all(this.workers), sleep(1000)]);
    }
    if (this.outstandingPing !== null) {
      this.report.pings.unansweredAtEnd++;
      this.rtts.push(performance.now() - this.outstandingPing);
    }
    this.client?.destroy();
    const rtt = percentiles(this.rtts);
    this.report.pings.rttMs = rtt && { median: round2(rtt.median), p99: round2(rtt.p99), max: round2(rtt.max) };
    return this.report;
  }

  private connect(): void {
    if (this.stopping) return;
    let wasReady = false;
    const client = new MuxClient(this.port, HOST, {}, () => {
      wasReady = true;
      if (this.everReady) this.report.reconnects++;
      this.everReady = true;
      this.ready = true;
    });
    client.on('error', () => {}); // counted below: every way a connection ends emits close
    client.once('close', () => {
      if (this.client === client) {
        this.client = null;
        this.ready = false;
      }
      if (!wasReady) this.report.connectFailures++;
      setTimeout(() => this.connect(), RECONNECT_MS);
    });
    this.client = client;
  }

  private ping(): void {
    const client = this.client;
    // One at a time: a stalled server shows as one long round trip, not a pile of them.
    if (!client || !this.ready || this.outstandingPing !== null) return;
    this.outstandingPing = performance.now();
    void client
      .ping()
      .then(
        (rtt) => {
          this.rtts.push(rtt);
          this.report.pings.answered++;
        },
        () => {
          this.report.pings.failed++;
        },
      )
      .finally(() => {
        this.outstandingPing = null;
      });
  }

  private async echoLoop(): Promise<void> {
    while (!this.stopping) {
      const client = this.client;
      if (!client || !this.ready) {
        await sleep(50);
        continue;
      }
      await this.echoOnce(client);
    }
  }

  /** One echo stream of a random size: opened, written, read back and compared. */
  private async echoOnce(client: MuxClient): Promise<void> {
    // Log-uniform sizes: as many streams of a few KiB as of hundreds.
    const size = Math.round(Math.exp(Math.log(MIN_ECHO) + Math.random() * (Math.log(MAX_ECHO) - Math.log(MIN_ECHO))));
    const data = randomBytes(Math.min(MAX_ECHO, size + randomInt(0, 1024)));
    const deadline = AbortSignal.timeout(ECHO_TIMEOUT_MS);
    let stream: MuxStream | null = null;
    const chunks: Buffer[] = [];
    try {
      stream = await client.StreamPool.createStream(this.meta as never);
      this.inFlight.add(stream);
      const opened = stream;
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          opened.destroy();
          reject(Object.assign(new Error('echo timed out'), { code: 'TIMEOUT' }));
        };
        deadline.addEventListener('abort', onAbort, { once: true });
        opened.on('data', (chunk: Buffer) => chunks.push(chunk));
        opened.once('end', () => {
          deadline.removeEventListener('abort', onAbort);
          resolve();
        });
        opened.once('error', (err) => {
          deadline.removeEventListener('abort', onAbort);
          reject(err);
        });
        opened.end(data);
      });
      const back = Buffer.concat(chunks);
      const same = createHash('sha256').update(data).digest().equals(createHash('sha256').update(back).digest());
      if (same) {
        this.report.echo.ok++;
        this.report.echo.bytes += data.length;
        this.onFirstEcho();
        return;
      }
      this.report.echo.corruptedBytes += differingBytes(data, back) + Math.abs(data.length - back.length);
      this.fail('CORRUPTED');
    } catch (err) {
      // What did come back before the failure must still be right.
      this.report.echo.corruptedBytes += differingBytes(data, Buffer.concat(chunks));
      this.fail((err as { code?: string }).code ?? (err as Error).message.slice(0, 60));
    } finally {
      if (stream) {
        this.inFlight.delete(stream);
        stream.destroy();
      }
    }
  }

  private fail(code: string): void {
    this.report.echo.failed++;
    this.report.echo.failures[code] = (this.report.echo.failures[code] ?? 0) + 1;
  }
}

function emptyReport(): GoodClientReport {
  return {
    pings: { answered: 0, failed: 0, unansweredAtEnd: 0, rttMs: null },
    echo: { ok: 0, failed: 0, failures: {}, bytes: 0, corruptedBytes: 0 },
    reconnects: 0,
    connectFailures: 0,
  };
}

/** Bytes that differ where both buffers have one. */
function differingBytes(a: Buffer, b: Buffer): number {
  const length = Math.min(a.length, b.length);
  if (a.subarray(0, length).equals(b.subarray(0, length))) return 0;
  let count = 0;
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) count++;
  return count;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function send(message: GoodClientMessage): void {
  if (process.connected) process.send!(message);
}

// Only as a child of run.ts: the module is also imported for its types.
if (require.main === module) {
  let announced = false;
  const client = new GoodClient(Number(process.argv[2]), JSON.parse(process.argv[3] ?? 'null'), () => {
    if (announced) return;
    announced = true;
    send({ type: 'ready' });
  });
  client.start();
  process.on('message', (message: { type: string }) => {
    if (message.type === 'begin') client.begin();
    else if (message.type === 'stop') {
      void client.stop().then((report) => {
        send({ type: 'report', report });
        // Lets the report go out over IPC first.
        setTimeout(() => process.exit(0), 100);
      });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
