/**
 * The jobs: copy a tree of small files, copy one large file, copy the tree again unchanged
 * (no-op), and resume an interrupted tsmux send. Repetitions are interleaved across the tools
 * (rep 1 of every tool, then rep 2, ...), starting each round at the next tool, so that a
 * machine that warms up or slows down over the run does not favour one column.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { lastLine, run } from './children';
import { emptyDir, measurePath, sha256 } from './data';
import { openCopier, skipReason, TOOL_LABELS, type Copied, type Copier, type Setup, type ToolId } from './tools-copy';
import type { SendReport } from './tsmux';

export type JobId = 'tree' | 'big' | 'noop' | 'resume';

/** One run of one tool. A failed run keeps its time for the JSON but is never shown as a time. */
export interface Sample {
  /** 1-based; 0 for the untimed full copy before the no-op runs. */
  rep: number;
  ok: boolean;
  seconds: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Payload bytes tsmux says it sent (send --json); null when unknown or not tsmux. */
  wireBytes: number | null;
  error: string | null;
  report: SendReport | null;
  /** Resume job: the interrupted first run, and whether the result's SHA-256 matched. */
  interrupted?: { afterMs: number; seconds: number; exitCode: number | null; signal: string | null; report: SendReport | null };
  hashOk?: boolean;
}

export interface JobResult {
  id: JobId;
  tools: ToolId[];
  samples: Partial<Record<ToolId, Sample[]>>;
  skipped: Partial<Record<ToolId, string>>;
  /** Bytes of the source, for the wire fraction. */
  sourceBytes: number;
}

export interface JobContext {
  setup: Setup;
  /** Destinations go under here: DEST/<job>/<tool>. */
  destRoot: string;
  runs: number;
  log: (line: string) => void;
}

/** Copies `source` with every tool, `runs` times each; every run into an emptied destination. */
export async function copyJob(id: JobId, tools: ToolId[], source: string, ctx: JobContext): Promise<JobResult> {
  return withCopiers(id, tools, source, ctx, async (copiers, result, expected) => {
    for (let rep = 1; rep <= ctx.runs; rep++) {
      for (const tool of rotate(copiers, rep - 1)) {
        emptyDir(tool.dest);
        result.samples[tool.id]!.push(await timedCopy(tool, source, rep, expected, ctx));
      }
    }
  });
}

/**
 * The unchanged tree again: one full copy first (rep 0, not timed in the table), then `runs`
 * copies into the now complete destination, which is never emptied.
 */
export async function noopJob(tools: ToolId[], source: string, ctx: JobContext): Promise<JobResult> {
  return withCopiers('noop', tools, source, ctx, async (copiers, result, expected) => {
    for (const tool of copiers) {
      emptyDir(tool.dest);
      result.samples[tool.id]!.push(await timedCopy(tool, source, 0, expected, ctx));
    }
    for (let rep = 1; rep <= ctx.runs; rep++) {
      for (const tool of rotate(copiers, rep - 1)) result.samples[tool.id]!.push(await timedCopy(tool, source, rep, expected, ctx));
    }
  });
}

/**
 * tsmux send of `file`, stopped with SIGINT once the server holds half of it, then the same
 * command again (the sample): its wire bytes against the file size, and the result's SHA-256.
 * The full send's time is `fullSeconds` (the large-file job's median) or, without it, one
 * full send measured here first (rep 0).
 */
export async function resumeJob(file: string, fullSeconds: number | null, ctx: JobContext): Promise<JobResult> {
  const sourceHash = await sha256(file);
  return withCopiers('resume', ['tsmux'], file, ctx, async ([tool], result, expected) => {
    if (!tool) return;
    if (fullSeconds === null) {
      emptyDir(tool.dest);
      const full = await timedCopy(tool, file, 0, expected, ctx);
      result.samples.tsmux!.push(full);
      if (!full.ok) return;
      fullSeconds = full.seconds;
    }
    const afterMs = Math.round((fullSeconds * 1000) / 2);
    for (let rep = 1; rep <= ctx.runs; rep++) {
      emptyDir(tool.dest);
      await settle();
      const first = await tool.copier.copy(file, {
        timeoutMs: timeoutFor(expected.bytes),
        onSpawn: (child) => {
          // Stopped once the server's partial file holds half the file ("interrupted at about
          // half"); the time-based stop remains for a CLI that keeps no partial file.
          const half = expected.bytes / 2;
          const poll = setInterval(() => {
            if (partialBytes(tool.dest) < half) return;
            clearInterval(poll); // once: a second SIGINT means "leave now"
            child.kill('SIGINT');
          }, 10);
          const timer = setTimeout(() => child.kill('SIGINT'), afterMs * 3);
          child.once('exit', () => {
            clearInterval(poll);
            clearTimeout(timer);
          });
        },
      });
      const interrupted = {
        afterMs,
        seconds: first.outcome.seconds,
        exitCode: first.outcome.code,
        signal: first.outcome.signal,
        report: first.report,
      };
      const sample = await timedCopy(tool, file, rep, expected, ctx);
      sample.interrupted = interrupted;
      if (first.outcome.code === 0) {
        sample.ok = false;
        sample.error = `the first send finished before the interrupt at ${afterMs} ms, so nothing was resumed`;
      } else if (first.outcome.code !== 130) {
        sample.ok = false;
        sample.error = `the interrupted send exited ${first.outcome.code ?? first.outcome.signal}, not 130: ${lastLine(first.outcome.stderr)}`;
      }
      if (sample.exitCode === 0) {
        sample.hashOk = (await sha256(path.join(tool.dest, path.basename(file)))) === sourceHash;
        if (!sample.hashOk) {
          sample.ok = false;
          sample.error ??= 'SHA-256 of the received file differs from the source';
        }
      }
      ctx.log(`  resume rep ${rep}: interrupted after ${afterMs} ms (exit ${interrupted.exitCode}), then ${describe(sample)}`);
      result.samples.tsmux!.push(sample);
    }
  });
}

interface OpenTool {
  id: ToolId;
  dest: string;
  copier: Copier;
}

type Expected = { files: number; bytes: number };

/** Opens a copier per runnable tool, runs `body`, closes them all whatever happens. */
async function withCopiers(
  id: JobId,
  tools: ToolId[],
  source: string,
  ctx: JobContext,
  body: (copiers: OpenTool[], result: JobResult, expected: Expected) => Promise<void>,
): Promise<JobResult> {
  const expected = measurePath(source);
  const result: JobResult = { id, tools, samples: {}, skipped: {}, sourceBytes: expected.bytes };
  const open: OpenTool[] = [];
  try {
    for (const tool of tools) {
      const reason = skipReason(tool, ctx.setup);
      if (reason) {
        result.skipped[tool] = reason;
        continue;
      }
      const dest = path.join(ctx.destRoot, id, tool);
      mkdirSync(dest, { recursive: true });
      try {
        open.push({ id: tool, dest, copier: await openCopier(tool, dest, ctx.setup) });
        result.samples[tool] = [];
      } catch (err) {
        result.skipped[tool] = `could not start: ${(err as Error).message}`;
      }
    }
    ctx.log(`${id}: ${open.map((tool) => TOOL_LABELS[tool.id].replace('\\', '')).join(', ')} × ${ctx.runs}`);
    await body(open, result, expected);
  } finally {
    await Promise.all(open.map((tool) => tool.copier.close()));
    // The next job should not pay for this one's files.
    for (const tool of open) emptyDir(tool.dest);
  }
  return result;
}

/** One run, after the page cache's dirty data of the previous run is written out. */
async function timedCopy(tool: OpenTool, source: string, rep: number, expected: Expected, ctx: JobContext): Promise<Sample> {
  await settle();
  const copied = await tool.copier.copy(source, { timeoutMs: timeoutFor(expected.bytes) });
  const sample = toSample(copied, rep);
  if (sample.ok) {
    // An exit code of 0 is not enough: the destination must hold exactly what was sent.
    const got = measurePath(path.join(tool.dest, path.basename(source)));
    if (got.files !== expected.files || got.bytes !== expected.bytes) {
      sample.ok = false;
      sample.error = `destination holds ${got.files} files / ${got.bytes} bytes, expected ${expected.files} / ${expected.bytes}`;
    }
  }
  if (!sample.ok && tool.copier.log()) sample.error += ` | server: ${lastLine(tool.copier.log())}`;
  ctx.log(`  ${TOOL_LABELS[tool.id].replace('\\', '')} rep ${rep}: ${describe(sample)}`);
  return sample;
}

function toSample({ outcome, report }: Copied, rep: number): Sample {
  let error: string | null = null;
  if (outcome.timedOut) error = `timed out after ${outcome.seconds.toFixed(0)} s`;
  else if (outcome.code !== 0) error = `exit ${outcome.code ?? outcome.signal}: ${lastLine(outcome.stderr) || lastLine(outcome.stdout)}`;
  else if (report && report.failed > 0) error = `${report.failed} file(s) failed`;
  return {
    rep,
    ok: error === null,
    seconds: outcome.seconds,
    exitCode: outcome.code,
    signal: outcome.signal,
    timedOut: outcome.timedOut,
    wireBytes: report ? report.wireBytes : null,
    error,
    report,
  };
}

function describe(sample: Sample): string {
  const wire = sample.wireBytes === null ? '' : `, wire ${sample.wireBytes} B`;
  return sample.ok ? `${sample.seconds.toFixed(3)} s${wire}` : `FAILED (${sample.error})`;
}

/**
 * Writes out the page cache's dirty pages (`sync`): otherwise the kernel flushes the previous
 * run's gigabyte during the next run and charges it to whichever tool comes next.
 */
async function settle(): Promise<void> {
  await run('sync', [], { timeoutMs: 120_000 });
}

/** Generous: a minute plus 4 MiB/s. A tool that hangs fails its run instead of the benchmark. */
function timeoutFor(bytes: number): number {
  return 60_000 + Math.ceil(bytes / (4 * 1024 * 1024)) * 1000;
}

/** The tools of one round, starting at `start` (mod their number). */
function rotate<T>(items: T[], start: number): T[] {
  const at = items.length > 0 ? start % items.length : 0;
  return [...items.slice(at), ...items.slice(0, at)];
}

/** Bytes in the partial files (`.NAME.tsmux-SIZE-MTIME.part`) directly in `dir`. */
function partialBytes(dir: string): number {
  let bytes = 0;
  try {
    for (const name of readdirSync(dir)) if (name.endsWith('.part')) bytes += statSync(path.join(dir, name)).size;
  } catch {
    // not there yet
  }
  return bytes;
}
