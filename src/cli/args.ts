/** Argument parsing shared by the commands: `node:util` parseArgs plus HOST:PORT and lists. */

/** A bad command line: main prints the message and the command's usage, and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Runs a `node:util` parseArgs call (strict, with `help: { type: 'boolean', short: 'h' }` in
 * each command's options) and turns its command-line errors into UsageError, in our words:
 * `unknown option --frobnicate`, `option --token needs a value`, `unexpected argument "x"`.
 * Other errors (a bad options table: a bug, not a bad command line) pass through.
 */
export function parse<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    const message = describeParseError(err);
    if (message === undefined) throw err;
    throw new UsageError(message);
  }
}

/**
 * Node's parseArgs errors carry only a `code`, so the option or argument is read back out of
 * the message (Node 20's wording; each pattern is pinned by a test). Its own messages are
 * long, quote inconsistently and leave a quote unbalanced; when the wording changes we still
 * say what kind of mistake it was, with Node's first line.
 */
function describeParseError(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const message = (err as Error).message;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    // Lazy up to the "'." that ends the name, so a name with a quote in it stays whole.
    const name = /^Unknown option '(.+?)'(?:\.|$)/.exec(message)?.[1];
    return name ? `unknown option ${name}` : `unknown option (${firstLine(message)})`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    // "Option '-t, --token <value>' argument missing": name the long form.
    const names = /^Option '([^']+)'/.exec(message)?.[1].match(/--?[^\s,<]+/g);
    const name = names?.[names.length - 1] ?? 'an option';
    if (/does not take an argument/.test(message)) return `option ${name} takes no value`;
    // "argument is ambiguous": the next word starts with a dash, so it was taken for an option.
    if (/ambiguous/.test(message)) {
      const long = longForm(name, message);
      return `option ${long} needs a value (one starting with - is written ${long}=-VALUE)`;
    }
    return `option ${name} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    // Greedy: the argument is the user's text and may hold quotes.
    const argument = /^Unexpected argument '(.*)'\. This command/s.exec(message)?.[1];
    return argument !== undefined ? `unexpected argument "${argument}"` : `unexpected argument (${firstLine(message)})`;
  }
  return firstLine(message);
}

/** `--token` for `-t`, from the hint in Node's "ambiguous" message (`use '--token=-XYZ'`). */
function longForm(name: string, message: string): string {
  if (name.startsWith('--')) return name;
  return /'(--[^'=]+)=-XYZ'/.exec(message)?.[1] ?? name;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0];
}

/** A port number 0-65535 (0 = any free port where listening). */
export function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new UsageError(`${what}: "${text}" is not a port number (0-65535)`);
  return Number(text);
}

/**
 * `HOST:PORT`, `[IPv6]:PORT`, or (with `defaultHost`) a bare `PORT`. Hosts are kept as given
 * (lower-cased), without the brackets of an IPv6 literal.
 */
export function parseHostPort(text: string, what: string, defaultHost?: string): HostPort {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed) return { host: bracketed[1].toLowerCase(), port: parsePort(bracketed[2], what) };
  const colon = text.lastIndexOf(':');
  if (colon < 0) {
    if (defaultHost !== undefined && /^\d+$/.test(text)) return { host: defaultHost, port: parsePort(text, what) };
    throw new UsageError(`${what}: expected HOST:PORT, got "${text}"`);
  }
  const host = text.slice(0, colon);
  if (host.length === 0 || host.includes(':')) throw new UsageError(`${what}: expected HOST:PORT (IPv6 as [ADDR]:PORT), got "${text}"`);
  return { host: host.toLowerCase(), port: parsePort(text.slice(colon + 1), what) };
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A positive integer option, such as `--concurrency 8`. */
export function parsePositiveInteger(text: string | undefined, what: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    throw new UsageError(`${what}: expected a positive integer, got "${text}"`);
  return Number(text);
}

/** A non-negative number of seconds, such as `--grace 2.5`. */
export function parseSeconds(text: string | undefined, what: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0)
    throw new UsageError(`${what}: expected a number of seconds, got "${text}"`);
  // Node's timers hold at most 2^31-1 ms and fire at once beyond it.
  if (value > MAX_SECONDS) throw new UsageError(`${what}: at most ${MAX_SECONDS} seconds, got "${text}"`);
  return value;
}

const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A byte count with an optional binary suffix, such as `--max-size 512M` (K, M, G, T). */
export function parseBytes(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  const value = match ? Number(match[1]) * 1024 ** ' kmgt'.indexOf((match[2] || ' ').toLowerCase()) : NaN;
  if (!Number.isSafeInteger(Math.floor(value))) throw new UsageError(`${what}: expected a size such as 1048576 or 512M, got "${text}"`);
  return Math.floor(value);
}

/** As {@link parseBytes}, but 0 is refused too: for limits, where 0 would refuse everything. */
export function parsePositiveBytes(text: string | undefined, what: string): number | undefined {
  const value = parseBytes(text, what);
  if (value === 0) throw new UsageError(`${what}: expected a size above 0, got "${text}"`);
  return value;
}

/** Comma-separated values of a repeatable option, flattened: `--x a,b --x c` → [a, b, c]. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value.length > 0);
}
