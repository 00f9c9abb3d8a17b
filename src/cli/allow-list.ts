/**
 * serve's --allow-forward entries: `host:port`, `host:*` (any port of that host), and address
 * ranges in CIDR form, `10.0.0.0/8:443` or `[fd00::]/8:*`. Names match names (case
 * insensitively), never the addresses they resolve to; ranges match literal addresses.
 */
import { BlockList, isIP } from 'node:net';
import { formatHostPort, parseHostPort, parsePort, UsageError } from './args';

interface RangeEntry {
  ranges: BlockList;
  port: number | '*';
}

export class AllowList {
  private readonly exact = new Set<string>();
  private readonly anyPort = new Set<string>();
  private readonly ranges: RangeEntry[] = [];

  constructor(entries: string[]) {
    for (const entry of entries) this.add(entry);
  }

  get size(): number {
    return this.exact.size + this.anyPort.size + this.ranges.length;
  }

  private add(entry: string): void {
    const cidr = /^\[?([0-9a-fA-F:.]+)\]?\/(\d+)\]?:(\d+|\*)$/.exec(entry);
    if (cidr) {
      const [, address, bits, port] = cidr;
      const family = isIP(address);
      const prefix = Number(bits);
      if (family === 0 || prefix > (family === 4 ? 32 : 128)) throw new UsageError(`--allow-forward: "${entry}" is not a valid range`);
      const ranges = new BlockList();
      ranges.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
      this.ranges.push({ ranges, port: port === '*' ? '*' : parsePort(port, '--allow-forward') });
      return;
    }
    const wildcard = /^(.*):\*$/.exec(entry);
    if (wildcard) {
      const { host } = parseHostPort(`${wildcard[1]}:1`, '--allow-forward');
      this.anyPort.add(host);
      return;
    }
    this.exact.add(formatHostPort(parseHostPort(entry, '--allow-forward')));
  }

  allows(host: string, port: number): boolean {
    const name = host.toLowerCase();
    if (this.exact.has(formatHostPort({ host: name, port })) || this.anyPort.has(name)) return true;
    const family = isIP(name);
    if (family === 0) return false;
    return this.ranges.some(
      (entry) => (entry.port === '*' || entry.port === port) && entry.ranges.check(name, family === 4 ? 'ipv4' : 'ipv6'),
    );
  }
}
