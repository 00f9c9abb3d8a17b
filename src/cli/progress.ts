/**
 * Live transfer progress. On a TTY: a cli-progress total bar (bytes, rate, ETA, files) and a bar
 * per file in flight, finished files logged above them. Elsewhere: plain lines, no ANSI
 * (`sent photos/a.jpg 1.2 MiB in 0.3 s`, and a `progress:` line every few seconds).
 *
 * A transfer reports every chunk, thousands of times a second. Handing each report to
 * cli-progress made runs with bars take up to twice as long as with `--progress none` (issue
 * 13): each bar update recomputes its ETA (two buffer copies), and MultiBar.remove() redraws
 * every bar, so each finished file cost a full frame. So reporting only records numbers and
 * queues the finished files' lines; once per frame, just before cli-progress draws, the state
 * is pushed into it: bars only for the files in flight at that moment, the queued lines as one
 * log, the total.
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
  /** Bytes moved so far. Cheap (it only stores the number): call it for every chunk. */
  update(bytes: number): void;
  done(): void;
  fail(reason: string): void;
}

/** Milliseconds between frames in bars mode: at most 10 redraws a second. */
export const FRAME_MS = 100;
/** File bars below the total at most (fewer on a short terminal); other files share one row. */
export const MAX_FILE_BARS = 8;

interface FileState {
  readonly name: string;
  readonly size: number;
  readonly started: number;
  bytes: number;
}

interface BarPayload {
  label: string;
  detail: string;
}

type Out = NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number; cork?(): void; uncork?(): void };

const LABEL_WIDTH = 28;

/** The whole transfer: a total and the files in flight. */
export class Progress {
  readonly mode: ProgressMode;
  private readonly out: Out;
  private readonly verb: string;
  private readonly started = Date.now();
  private totalBytes: number;
  private readonly totalFiles: number;
  private finishedBytes = 0;
  private finishedFiles = 0;
  private failedFiles = 0;
  /** In start order, which is the order of the bars. */
  private readonly inFlight = new Set<FileState>();
  /** The sum of `bytes` over {@link inFlight}, kept so that an update costs O(1). */
  private inFlightBytes = 0;
  /** Plain mode's `progress:` timer. Bars mode draws on cli-progress's own timer. */
  private readonly timer: NodeJS.Timeout | null = null;
  private readonly bars: MultiBar | null = null;
  private readonly totalBar: SingleBar | null = null;
  /** Bars mode: rows under the total, reused from file to file, top to bottom. */
  private readonly fileBars: SingleBar[] = [];
  /** Bars mode: the `… and N more` row, below the file bars, when more files are in flight. */
  private moreBar: SingleBar | null = null;
  private readonly maxFileBars: number;
  /** Bars mode: how many of {@link fileBars} the last frame used; the rest are removed after it. */
  private usedFileBars = 0;
  /** Bars mode: lines logged since the last frame, written above the bars with the next one. */
  private pendingLines: string[] = [];
  private removingBars = false;
  private stopped = false;

  constructor(options: ProgressOptions) {
    this.out = options.out ?? process.stderr;
    this.mode = options.mode ?? (this.out.isTTY ? 'bars' : 'plain');
    this.verb = options.verb;
    this.totalBytes = options.totalBytes;
    this.totalFiles = options.totalFiles;
    // The bars must fit on the screen with the total, the `… and N more` row and the line the
    // cursor waits on: cli-progress moves up over its last frame, and cannot go above the top row.
    this.maxFileBars = Math.max(0, Math.min(MAX_FILE_BARS, (this.out.rows ?? 24) - 3));
    if (this.mode === 'bars') {
      this.bars = new MultiBar(
        {
          stream: this.out,
          format: formatLine,
          barsize: 20,
          hideCursor: true,
          gracefulExit: false, // the commands handle signals and stop the bars themselves
          clearOnComplete: false,
          // cli-progress's timer is the only one drawing: a frame every FRAME_MS (it reschedules
          // after each), and 'update-pre' hands it our state just before. bar.update() never draws
          // in a MultiBar (its bars are GenericBars, and it turns synchronousUpdate off).
          fps: 1000 / FRAME_MS,
          // Rows move under the bars: logged lines push them down, a removed bar pulls the next
          // ones up. cli-progress skips a bar whose text did not change, which would leave
          // whatever was on that row before; so every frame draws every bar.
          forceRedraw: true,
          emptyOnZero: false,
        },
        Presets.shades_classic,
      );
      this.bars.on('update-pre', () => this.pushFrame());
      this.bars.on('update-post', () => this.afterFrame());
      this.out.cork?.(); // hiding the cursor and turning line wrapping off go out as one write
      this.totalBar = this.bars.create(Math.max(1, this.totalBytes), 0, this.totalPayload());
      this.out.uncork?.();
    } else if (this.mode === 'plain') {
      this.timer = setInterval(() => this.plainTick(), options.plainInterval ?? 2000);
      this.timer.unref();
    }
  }

  /** A file starts moving. */
  begin(name: string, size: number): FileProgress {
    const file: FileState = { name, size, started: Date.now(), bytes: 0 };
    this.inFlight.add(file);
    let settled = false;
    const settle = (): void => {
      settled = true;
      this.inFlight.delete(file);
      this.inFlightBytes -= file.bytes;
    };
    return {
      update: (bytes) => {
        if (settled || this.stopped) return;
        this.inFlightBytes += bytes - file.bytes;
        file.bytes = bytes;
      },
      done: () => {
        if (settled) return;
        settle();
        this.finishedBytes += size;
        this.finishedFiles++;
        this.log(`${this.verb} ${name} ${formatBytes(size)} in ${formatDuration((Date.now() - file.started) / 1000)}`);
      },
      fail: (reason) => {
        if (settled) return;
        settle();
        this.failedFiles++;
        this.totalBytes -= size; // the total bar still reaches 100% over what did move
        this.log(`failed ${name}: ${reason}`);
      },
    };
  }

  /** A line for the user: on a TTY above the bars, with the next frame (within {@link FRAME_MS}). */
  log(line: string): void {
    if (this.stopped || this.mode === 'none') return;
    if (this.bars) this.pendingLines.push(line);
    else this.out.write(`${line}\n`);
  }

  /** Draws the last state (lines, totals), leaves it on screen, shows the cursor again, stops the timers. */
  stop(): void {
    if (this.stopped) return;
    if (this.bars) {
      this.bars.update(); // a last frame: it flushes the logged lines, which MultiBar.stop() does not
      this.out.cork?.();
      this.bars.stop();
      this.out.uncork?.();
    }
    if (this.timer) clearInterval(this.timer);
    this.stopped = true;
  }

  private movedBytes(): number {
    return this.finishedBytes + this.inFlightBytes;
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

  /**
   * 'update-pre': cli-progress is about to draw. The state goes into its bars: the total, the
   * oldest files in flight on the file rows (a file that began and finished since the last
   * frame never gets one), the lines queued since the last frame as one log.
   */
  private pushFrame(): void {
    const bars = this.bars;
    if (!bars || !this.totalBar) return;
    // The frame goes out as one write, flushed once the frame's removals are done (afterFrame).
    this.out.cork?.();
    if (this.pendingLines.length > 0) {
      // cli-progress writes logged lines over the bars without clearing each row: pad them to
      // the terminal's width so no remnant of a bar stays visible behind a short line.
      const width = this.out.columns ?? 80;
      let text = '';
      for (const line of this.pendingLines) text += `${line.padEnd(width - 1)}\n`;
      bars.log(text);
      this.pendingLines = [];
    }
    this.totalBar.setTotal(Math.max(1, this.totalBytes));
    this.totalBar.update(this.totalBytes === 0 ? 1 : this.movedBytes(), this.totalPayload());

    // The oldest files in flight get the rows, in start order: a file keeps its row until an
    // older one finishes. A new row goes below the others, which is its place: the `more` row,
    // the only one that could be below, exists only while all file rows are in use.
    const now = Date.now();
    let used = 0;
    for (const file of this.inFlight) {
      if (used === this.maxFileBars) break;
      const payload: BarPayload = { label: file.name, detail: fileDetail(file, now) };
      const bar = this.fileBars[used];
      if (bar) {
        bar.setTotal(Math.max(1, file.size));
        bar.update(file.bytes, payload);
      } else this.fileBars.push(bars.create(Math.max(1, file.size), file.bytes, payload));
      used++;
    }
    this.usedFileBars = used;

    const more = this.inFlight.size - used;
    if (more > 0) {
      const payload: BarPayload = { label: '', detail: `… and ${more} more file${more === 1 ? '' : 's'} in flight` };
      if (this.moreBar) this.moreBar.update(payload);
      else this.moreBar = bars.create(1, 0, payload, { format: moreLine });
    }
  }

  /**
   * 'update-post': removes the rows the frame left idle. MultiBar.remove() redraws every bar,
   * which is why it is not called as each file finishes but here, once per row that has no file
   * any more, and only where the number of files in flight fell.
   */
  private afterFrame(): void {
    const bars = this.bars;
    if (!bars || this.removingBars) {
      this.out.uncork?.();
      return;
    }
    // remove() draws a frame itself, so this handler runs again inside it.
    this.removingBars = true;
    try {
      if (this.moreBar && this.inFlight.size <= this.usedFileBars) {
        const moreBar = this.moreBar;
        this.moreBar = null;
        bars.remove(moreBar);
      }
      while (this.fileBars.length > this.usedFileBars) {
        const bar = this.fileBars.pop();
        if (bar) bars.remove(bar);
      }
    } finally {
      this.removingBars = false;
      this.out.uncork?.();
    }
  }

  private plainTick(): void {
    if (this.stopped || this.inFlight.size === 0) return;
    const moved = this.movedBytes();
    const percent = this.totalBytes > 0 ? Math.floor((moved / this.totalBytes) * 100) : 100;
    this.out.write(`progress: ${percent}% ${this.totalPayload().detail}\n`);
  }
}

function fileDetail(file: FileState, now: number): string {
  return `${formatBytes(file.bytes)}/${formatBytes(file.size)} ${formatRate(file.bytes, (now - file.started) / 1000)}`;
}

/** `label [bar] 42% detail`, the label cut from the left to keep the end of long paths. */
function formatLine(options: Options, params: Params, payload: BarPayload): string {
  const label = payload.label.length > LABEL_WIDTH ? `…${payload.label.slice(-(LABEL_WIDTH - 1))}` : payload.label.padEnd(LABEL_WIDTH);
  const percent = `${Math.floor(params.progress * 100)}%`.padStart(4);
  return `${label} ${Format.BarFormat(params.progress, options)} ${percent} ${payload.detail}`;
}

/** The row for the files in flight that have no bar: text only. */
function moreLine(_options: Options, _params: Params, payload: BarPayload): string {
  return payload.detail;
}
