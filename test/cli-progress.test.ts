/**
 * The live progress of `tsmux send`, `get` and `demo`: plain lines off a terminal, cli-progress
 * bars on one, and in both a cost per update that does not grow with how often the transfer
 * reports (issue 13: bars made a send up to twice as slow as `--progress none`).
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { FRAME_MS, Progress, type FileProgress, type ProgressOptions } from '../src/cli/progress';
import { fakeTerminal, type FakeTerminal } from './helpers/terminal';

/** cli-progress writes each cursor move, row and erase apart: a few chunks per row of a frame. */
const CHUNKS_PER_ROW = 4;
/** Around the rows: moving back up, the logged lines, the erase after them. */
const CHUNKS_PER_FRAME = 6;

const pause = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Long enough for cli-progress's timer, started before, to have drawn a frame. */
const nextFrame = (): Promise<void> => sleep(FRAME_MS * 1.5);

/**
 * 2,000 small files one after the other, each reported 100 times in a tight loop, with a pause
 * every 100 files so that timers run (never while one of these files is in flight). `big`, if
 * given, is reported along. Returns the time it took.
 */
async function busyTransfer(progress: Progress, big?: FileProgress): Promise<number> {
  const started = Date.now();
  for (let file = 0; file < 2000; file++) {
    const view = progress.begin(`dir/f${file}.bin`, 1000);
    for (let i = 1; i <= 100; i++) {
      view.update(i * 10);
      big?.update(file * 100 + i);
    }
    view.done();
    if (file % 100 === 99) await sleep(25);
  }
  return Date.now() - started;
}

/**
 * Progress in bars mode on `terminal`, stopped when the test ends however it ends: cli-progress's
 * timer is not unref'd, so bars left running would keep the test process alive.
 */
function barsOn(t: TestContext, terminal: FakeTerminal, options: Omit<ProgressOptions, 'out' | 'verb'>): Progress {
  const progress = new Progress({ out: terminal.out, verb: 'sent', ...options });
  t.after(() => progress.stop());
  return progress;
}

/** How often each `sent dir/fN.bin` line was written. */
function sentLines(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [, name] of text.matchAll(/sent (dir\/f\d+\.bin) /g)) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

describe('Progress in plain mode (not a terminal)', () => {
  test('prints no line per update: a progress line per interval, plus one per finished file', async () => {
    const lines: string[] = [];
    const out = new PassThrough();
    out.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split(/(?<=\n)/)));
    const interval = 100;
    const progress = new Progress({ out, mode: 'plain', verb: 'sent', totalBytes: 1e9, totalFiles: 1e6, plainInterval: interval });
    // A file in flight throughout, so that every tick has something to report.
    const big = progress.begin('big.bin', 1e8);
    for (let i = 0; i < 100_000; i++) big.update(i);
    await pause();
    assert.equal(lines.length, 0, 'updates alone write nothing');
    const elapsed = await busyTransfer(progress, big);
    progress.stop();
    await pause();
    const progressLines = lines.filter((line) => line.startsWith('progress: '));
    assert.equal(lines.filter((line) => line.startsWith('sent dir/f')).length, 2000);
    assert.ok(progressLines.length <= elapsed / interval + 1, `${progressLines.length} progress lines in ${elapsed} ms`);
    assert.equal(lines.length, 2000 + progressLines.length);
    for (const line of progressLines)
      assert.match(line, /^progress: \d+% [\d.]+ [KM]?i?B\/954 MiB [\d.]+ [KM]?i?B\/s ETA .+ \d+\/1000000 files\n$/);
  });
});

describe('Progress in bars mode (a terminal)', () => {
  test('draws a total, finished files logged above it, the cursor hidden meanwhile', (t) => {
    const terminal = fakeTerminal();
    const progress = barsOn(t, terminal, { totalBytes: 100, totalFiles: 1 });
    assert.equal(progress.mode, 'bars'); // the default on a TTY
    const file = progress.begin('photos/a.jpg', 100);
    file.update(50);
    file.done();
    progress.stop();
    progress.stop();
    const text = terminal.text();
    assert.ok(text.startsWith('\x1b[?25l'), 'the cursor is hidden');
    assert.ok(text.lastIndexOf('\x1b[?25h') > text.lastIndexOf('\x1b[?25l'), 'and shown again');
    const screen = terminal.screen();
    assert.equal(screen.length, 2, screen.join('\n'));
    assert.match(screen[0], /^sent photos\/a\.jpg 100 B in [\d.]+ s$/);
    assert.match(screen[1], /^total {24}\u2588{20} 100% 100 B\/100 B .*1\/1 files$/);
  });

  test('an update only stores the number: 100,000 of them draw nothing, and stop() shows the last', (t) => {
    const terminal = fakeTerminal();
    const progress = barsOn(t, terminal, { totalBytes: 200_000, totalFiles: 2 });
    const before = terminal.chunks.length;
    const a = progress.begin('a.bin', 100_000);
    const b = progress.begin('b.bin', 100_000);
    for (let i = 1; i <= 100_000; i++) a.update(i);
    b.update(25_000);
    assert.equal(terminal.chunks.length, before);
    progress.stop();
    const screen = terminal.screen();
    assert.equal(screen.length, 3, screen.join('\n'));
    assert.match(screen[0], /^total .* 62% 122 KiB\/195 KiB .* 0\/2 files$/);
    assert.match(screen[1], /^a\.bin {24}\u2588{20} 100% 97\.7 KiB\/97\.7 KiB /);
    assert.match(screen[2], /^b\.bin {24}\u2588{5}\u2591{15} {2}25% 24\.4 KiB\/97\.7 KiB /);
  });

  test(`a frame at most every ${FRAME_MS} ms, however many files finish; each logged once, in one write per frame`, async (t) => {
    const terminal = fakeTerminal({ columns: 140, rows: 24 });
    const progress = barsOn(t, terminal, { totalBytes: 1e9, totalFiles: 1e6 });
    const big = progress.begin('big.bin', 1e8);
    const elapsed = await busyTransfer(progress, big);
    const drawn = terminal.flushes();
    big.done();
    progress.stop();
    // One flush on creation, then one per frame, FRAME_MS apart at the least.
    const frames = elapsed / FRAME_MS + 1;
    assert.ok(drawn <= frames + 1, `${drawn} flushes in ${elapsed} ms`);
    assert.ok(terminal.flushes() <= drawn + 2, 'stop() draws the last frame and restores the terminal');
    // A frame is the lines, the total and big.bin's bar: no file finished between frames has one.
    const perFrame = CHUNKS_PER_FRAME + 2 * CHUNKS_PER_ROW;
    assert.ok(terminal.chunks.length <= (frames + 3) * perFrame, `${terminal.chunks.length} chunks in ${elapsed} ms`);
    assert.doesNotMatch(terminal.text(), /dir\/f\d+\.bin +[\u2588\u2591]/, 'no finished file got a bar');
    const logged = sentLines(terminal.text());
    assert.equal(logged.size, 2000);
    for (const [name, count] of logged) assert.equal(count, 1, name);
    const withLines = terminal.chunks.filter((chunk) => chunk.includes('sent dir/f')).length;
    assert.ok(withLines <= frames + 1, `the lines of one frame go out as one chunk: ${withLines} chunks`);
    const screen = terminal.screen();
    assert.equal(screen.length, 2001 + 1, 'the lines, then the total, nothing left over');
    assert.match(screen[2000], /^sent big\.bin /);
    assert.match(screen[2001], /^total .* 2001\/1000000 files$/);
  });

  test('files beyond the terminal height share one row; rows of finished files go away', async (t) => {
    const terminal = fakeTerminal({ columns: 120, rows: 10 });
    const progress = barsOn(t, terminal, { totalBytes: 30_000, totalFiles: 30 });
    const views = Array.from({ length: 30 }, (_, i) => progress.begin(`a/rather/long/directory/name/file-${i}.bin`, 1000));
    for (const view of views) view.update(500);
    progress.log('first frame');
    await nextFrame();
    let screen = terminal.screen();
    // Ten rows: the total, seven files, the rest, and the line the cursor waits on.
    assert.equal(screen.length, 1 + 1 + 7 + 1, screen.join('\n'));
    assert.equal(screen[0], 'first frame');
    assert.match(screen[1], /^total .* 50% /);
    assert.match(screen[2], /^…g\/directory\/name\/file-0\.bin \u2588{10}\u2591{10} {2}50% /);
    assert.match(screen[8], /^…g\/directory\/name\/file-6\.bin /);
    assert.equal(screen[9], '… and 23 more files in flight');
    // All but two finish: file-3 and file-20 take the first two rows, the others go away.
    views.forEach((view, i) => (i === 3 || i === 20 ? view.update(900) : view.done()));
    progress.stop();
    screen = terminal.screen();
    assert.equal(screen.length, 1 + 28 + 3, screen.join('\n'));
    assert.match(screen[29], /^total .* 28\/30 files$/);
    assert.match(screen[30], /^…g\/directory\/name\/file-3\.bin \u2588{18}\u2591{2} {2}90% /);
    assert.match(screen[31], /^…\/directory\/name\/file-20\.bin \u2588{18}\u2591{2} {2}90% /);
  });

  test('a line logged above the bars leaves no remnant of them, and bars that did not change are drawn again', async (t) => {
    const terminal = fakeTerminal({ columns: 100, rows: 20 });
    const progress = barsOn(t, terminal, { totalBytes: 1000, totalFiles: 2 });
    // Nothing moves, so no bar's text changes from one frame to the next.
    progress.begin('a-file-with-a-long-name.bin', 500);
    progress.begin('b.bin', 500);
    await nextFrame();
    const before = terminal.screen();
    assert.equal(before.length, 3, before.join('\n'));
    // The first line goes over the total, which cli-progress clears; the second over a bar.
    progress.log('x');
    progress.log('y');
    await nextFrame();
    assert.deepEqual(terminal.screen(), ['x', 'y', ...before]);
    progress.stop();
    assert.deepEqual(terminal.screen(), ['x', 'y', ...before]);
  });
});

test('Progress in mode none writes nothing', () => {
  const terminal = fakeTerminal();
  const progress = new Progress({ out: terminal.out, mode: 'none', verb: 'sent', totalBytes: 10, totalFiles: 1 });
  const file = progress.begin('a', 10);
  file.update(10);
  file.done();
  progress.log('x');
  progress.stop();
  assert.equal(terminal.chunks.length, 0);
});
