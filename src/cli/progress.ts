/**
 * Live transfer progress. On a TTY: one cli-progress bar per file in flight plus a total bar
 * (bytes, rate, ETA), finished files logged above them. Elsewhere: plain lines, no ANSI
 * (`sent photos/a.jpg 1.2 MiB in 0.3 s`, and a `progress:` line every few seconds).
 */
import { Format, MultiBar, Presets, type Options, type Params, type SingleBar } from 'cli-progress';
import { formatBytes, formatDuration, formatRate } from './summary/format';

export type ProgressMode = 'bars' | 'plain' | 'none';

export interface ProgressOptions {
  /** Where progress goes. Default `process.stderr`. */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Default: `bars` on a TTY, `plain` otherwise. */
  mode?: ProgressMode;
  /** The past tense shown for a finished file: `sent`, `received`. */
  verb: string;
  totalBytes: number;
  totalFiles: number;
  /** Plain mode: milliseconds between `progress:` lines. Default 2000. */
  plainInterval?: number;
}

/** One file's progress, as handed out by {@link Progress.begin}. */
export interface FileProgress {
  update(bytes: number): void;
  done(): void;
  fail(reason: string): void;
}

interface BarPayload {
  label: string;
  detail: string;
}

const LABEL_WIDTH = 28;

/** The whole transfer: a total and the files in flight. */
export class Progress {
  readonly mode: ProgressMode;
  private readonly out: NodeJS.WritableStream;
  private readonly verb: string;
  private readonly started = Date.now();
  private totalBytes: number;
  private readonly totalFiles: number;
  private finishedBytes = 0;
  private finishedFiles = 0;
  private failedFiles = 0;
  private readonly inFlight = new Map<object, number>();
  private readonly bars: MultiBar | null = null;
  private readonly totalBar: SingleBar | null = null;
  private readonly timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(options: ProgressOptions) {
    this.out = options.out ?? process.stderr;
    this.mode = options.mode ?? ((options.out ?? process.stderr).isTTY ? 'bars' : 'plain');
    this.verb = options.verb;
    this.totalBytes = options.totalBytes;
    this.totalFiles = options.totalFiles;
    if (this.mode === 'bars') {
      this.bars = new MultiBar(
        {
          stream: this.out,
          format: formatLine,
          barsize: 20,
          hideCursor: true,
          gracefulExit: false, // the commands handle signals and stop the bars themselves
          clearOnComplete: false,
          fps: 10,
          emptyOnZero: false,
        },
        Presets.shades_classic,
      );
      this.totalBar = this.bars.create(Math.max(1, this.totalBytes), 0, this.totalPayload());
    } else if (this.mode === 'plain') {
      this.timer = setInterval(() => this.plainTick(), options.plainInterval ?? 2000);
      this.timer.unref();
    }
  }

  /** A file starts moving. */
  begin(name: string, size: number): FileProgress {
    const key = {};
    const started = Date.now();
    this.inFlight.set(key, 0);
    const bar = this.bars?.create(Math.max(1, size), 0, { label: name, detail: fileDetail(0, size, started) } satisfies BarPayload) ?? null;
    let settled = false;
    const settle = (): number => {
      settled = true;
      const bytes = this.inFlight.get(key) ?? 0;
      this.inFlight.delete(key);
      if (bar) this.bars?.remove(bar);
      return bytes;
    };
    return {
      update: (bytes) => {
        if (settled || this.stopped) return;
        this.inFlight.set(key, bytes);
        bar?.update(bytes, { label: name, detail: fileDetail(bytes, size, started) } satisfies BarPayload);
        this.refreshTotal();
      },
      done: () => {
        if (settled) return;
        settle();
        this.finishedBytes += size;
        this.finishedFiles++;
        this.log(`${this.verb} ${name} ${formatBytes(size)} in ${formatDuration((Date.now() - started) / 1000)}`);
        this.refreshTotal();
      },
      fail: (reason) => {
        if (settled) return;
        settle();
        this.failedFiles++;
        this.totalBytes -= size; // the total bar still reaches 100% over what did move
        this.log(`failed ${name}: ${reason}`);
        this.refreshTotal();
      },
    };
  }

  /** A line for the user, above the bars on a TTY. */
  log(line: string): void {
    if (this.stopped || this.mode === 'none') return;
    if (this.bars) {
      // cli-progress writes logged lines over the bars without clearing each row: pad them
      // to the terminal's width so no remnant of a bar stays visible behind a short line.
      const width = (this.out as { columns?: number }).columns ?? 80;
      this.bars.log(`${line.padEnd(width - 1)}\n`);
    } else this.out.write(`${line}\n`);
  }

  /** Removes the bars (leaving the last frame on screen) and stops the timers. */
  stop(): void {
    if (this.stopped) return;
    if (this.bars) {
      this.refreshTotal();
      this.bars.update(); // flush logged lines
      this.bars.stop();
    }
    if (this.timer) clearInterval(this.timer);
    this.stopped = true;
  }

  private movedBytes(): number {
    let bytes = this.finishedBytes;
    for (const value of this.inFlight.values()) bytes += value;
    return bytes;
  }

  private totalPayload(): BarPayload {
    const moved = this.movedBytes();
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? moved / seconds : 0;
    const eta = rate > 0 ? formatDuration((this.totalBytes - moved) / rate) : '?';
    const files = `${this.finishedFiles}/${this.totalFiles} files${this.failedFiles > 0 ? `, ${this.failedFiles} failed` : ''}`;
    return {
      label: 'total',
      detail: `${formatBytes(moved)}/${formatBytes(this.totalBytes)} ${formatRate(moved, seconds)} ETA ${eta} ${files}`,
    };
  }

  private refreshTotal(): void {
    if (!this.totalBar || this.stopped) return;
    this.totalBar.setTotal(Math.max(1, this.totalBytes));
    this.totalBar.update(this.totalBytes === 0 ? 1 : this.movedBytes(), this.totalPayload());
  }

  private plainTick(): void {
    if (this.stopped || this.inFlight.size === 0) return;
    const moved = this.movedBytes();
    const percent = this.totalBytes > 0 ? Math.floor((moved / this.totalBytes) * 100) : 100;
    this.out.write(`progress: ${percent}% ${this.totalPayload().detail}\n`);
  }
}

function fileDetail(bytes: number, size: number, started: number): string {
  return `${formatBytes(bytes)}/${formatBytes(size)} ${formatRate(bytes, (Date.now() - started) / 1000)}`;
}

/** `label [bar] 42% detail`, the label cut from the left to keep the end of long paths. */
function formatLine(options: Options, params: Params, payload: BarPayload): string {
  const label = payload.label.length > LABEL_WIDTH ? `…${payload.label.slice(-(LABEL_WIDTH - 1))}` : payload.label.padEnd(LABEL_WIDTH);
  const percent = `${Math.floor(params.progress * 100)}%`.padStart(4);
  return `${label} ${Format.BarFormat(params.progress, options)} ${percent} ${payload.detail}`;
}
