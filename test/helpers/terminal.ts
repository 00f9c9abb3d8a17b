/**
 * A fake terminal for progress tests: a Writable with `isTTY`, `columns` and `rows` that counts
 * what reaches it and replays it onto a grid, so a test can read the screen a user would see
 * (rows overwritten in place, remnants left behind) instead of matching escape sequences.
 */
import { Writable } from 'node:stream';

export interface FakeTerminal {
  out: Writable & { isTTY: true; columns: number; rows: number };
  /** Every chunk written, in order: one per `write()` call. */
  chunks: string[];
  /** How many times the stream handed data on (`_write` or `_writev`): one syscall each on a real TTY. */
  flushes(): number;
  text(): string;
  /** The grid as the chunks left it, trailing blanks cut, without the cursor's empty last row. */
  screen(): string[];
}

export function fakeTerminal(size: { columns: number; rows: number } = { columns: 200, rows: 40 }): FakeTerminal {
  const chunks: string[] = [];
  let flushes = 0;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      flushes++;
      chunks.push(chunk.toString('utf8'));
      callback();
    },
    writev(batch, callback) {
      flushes++;
      for (const { chunk } of batch) chunks.push((chunk as Buffer).toString('utf8'));
      callback();
    },
  });
  const out = Object.assign(stream, { isTTY: true as const, ...size });
  return {
    out,
    chunks,
    flushes: () => flushes,
    text: () => chunks.join(''),
    screen: () => {
      const rows = replay(chunks.join(''));
      while (rows.length > 0 && rows[rows.length - 1] === '') rows.pop();
      return rows;
    },
  };
}

/**
 * Plays text onto an unbounded grid. Understands what cli-progress and readline write: printable
 * characters, `\n` (a new line, as a TTY's output processing makes it), `\r`, and CSI sequences
 * for cursor moves (A B C D G) and erasing (K J); mode switches (`?25l`, `?7l`) are ignored.
 */
export function replay(text: string): string[] {
  const grid: string[][] = [[]];
  let row = 0;
  let column = 0;
  const line = (): string[] => (grid[row] ??= []);
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '\n') {
      row++;
      column = 0;
      line();
    } else if (char === '\r') column = 0;
    else if (char === '\x1b' && text[i + 1] === '[') {
      const match = /^\x1b\[(\??)(\d*)(?:;\d*)*([A-Za-z])/.exec(text.slice(i, i + 16));
      if (!match) throw new Error(`unknown escape at ${i}: ${JSON.stringify(text.slice(i, i + 10))}`);
      i += match[0].length - 1;
      if (match[1] === '?') continue;
      const n = match[2] === '' ? undefined : Number(match[2]);
      switch (match[3]) {
        case 'A':
          row = Math.max(0, row - (n ?? 1));
          break;
        case 'B':
          row += n ?? 1;
          line();
          break;
        case 'C':
          column += n ?? 1;
          break;
        case 'D':
          column = Math.max(0, column - (n ?? 1));
          break;
        case 'G':
          column = (n ?? 1) - 1;
          break;
        case 'K':
          if ((n ?? 0) === 0) line().length = Math.min(line().length, column);
          else if (n === 1) line().fill(' ', 0, column + 1);
          else grid[row] = [];
          break;
        case 'J':
          if ((n ?? 0) !== 0) throw new Error(`unsupported erase \\x1b[${n}J`);
          line().length = Math.min(line().length, column);
          grid.length = row + 1;
          break;
        default:
          throw new Error(`unsupported escape ${JSON.stringify(match[0])}`);
      }
    } else {
      const cells = line();
      while (cells.length < column) cells.push(' ');
      cells[column++] = char;
    }
  }
  return grid.map((cells) =>
    Array.from(cells, (cell) => cell ?? ' ')
      .join('')
      .trimEnd(),
  );
}
