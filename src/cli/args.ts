/** Argument parsing shared by the commands: `node:util` parseArgs plus HOST:PORT and lists. */
import { isIPv6 } from 'node:net';

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
 * The TCP port `tsmux serve` listens on without --port, and the one `tsmux send` connects to
 * when its target names only a host: kept here so the two cannot drift apart.
 */
export const DEFAULT_PORT = 12345;

/** What {@link parseHostPort} fills in for a part the text leaves out. */
export interface HostPortDefaults {
  /** The host for a bare `PORT` (`--listen 8080`); without it a bare number is refused. */
  defaultHost?: string | undefined;
  /** The port for a bare `HOST` or `[IPv6]` (`send example.org`); without it the port is required. */
  defaultPort?: number | undefined;
}

/**
 * `HOST:PORT` or `[IPv6]:PORT`; with `defaultHost` also a bare `PORT`, with `defaultPort` also
 * a bare `HOST` or `[IPv6]`. A string as `defaults` is the default host. Hosts are kept as
 * given (lower-cased), without the brackets of an IPv6 literal.
 *
 * An IPv6 address without brackets is refused even with a default port: in `::1:80` the
 * last group could be the port or part of the address, so we make the user say which.
 */
export function parseHostPort(text: string, what: string, defaults: string | HostPortDefaults = {}): HostPort {
  const { defaultHost, defaultPort } = typeof defaults === 'string' ? { defaultHost: defaults, defaultPort: undefined } : defaults;
  const form = [defaultPort === undefined ? 'HOST:PORT' : 'HOST[:PORT]', ...(defaultHost === undefined ? [] : ['PORT'])].join(' or ');
  const refused = (hint = ''): UsageError => new UsageError(`${what}: expected ${form}${hint}, got "${text}"`);
  const ipv6Hint = ` (IPv6 as [ADDR]${defaultPort === undefined ? ':PORT' : ' or [ADDR]:PORT'})`;
  const bracketed = /^\[([^[\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    const [, address, port] = bracketed;
    if (!isIPv6(address)) throw refused(ipv6Hint);
    if (port !== undefined) return { host: address.toLowerCase(), port: parsePort(port, what) };
    if (defaultPort === undefined) throw refused(ipv6Hint);
    return { host: address.toLowerCase(), port: defaultPort };
  }
  const colon = text.lastIndexOf(':');
  const host = colon < 0 ? text : text.slice(0, colon);
  if (host.includes(':')) throw refused(ipv6Hint);
  if (colon < 0 && /^\d+$/.test(text)) {
    // A bare number is a port, never a host: `send 8080 file` lacks its host.
    if (defaultHost === undefined) throw refused();
    return { host: defaultHost, port: parsePort(text, what) };
  }
  // Brackets belong around a whole IPv6 address; blanks are never part of a host name.
  if (host.length === 0 || /[[\]\s]/.test(host)) throw refused();
  if (colon < 0) {
    if (defaultPort === undefined) throw refused();
    return { host: host.toLowerCase(), port: defaultPort };
  }
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

/**
 * An option whose value may be left out (`--proxy-protocol` alone, or `--proxy-protocol
 * 10.0.0.0/8`), which parseArgs cannot express: where `name` is last or followed by another
 * option, it becomes `name=` (an empty value). For commands without positional arguments,
 * so a following word can only be its value.
 */
export function withOptionalValue(argv: string[], name: string): string[] {
  return argv.map((arg, i) => (arg === name && (i + 1 === argv.length || argv[i + 1].startsWith('-')) ? `${name}=` : arg));
}

/** Comma-separated values of a repeatable option, flattened: `--x a,b --x c` → [a, b, c]. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value.length > 0);
}
