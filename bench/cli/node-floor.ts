/**
 * What one Node process costs per request at the least: a server that answers every read
 * with the same 1 KiB HTTP response from memory (one read and one write per request, no
 * parsing, no second socket). A tunnel has two Node processes on the path, each doing at
 * least this, so it bounds how far tsmux can go on a machine whose cores wrk, nginx and the
 * tunnel share.
 */
import { start, stop } from './children';
import { processCpuSeconds } from './cpu';
import { accepts, freePort } from './ports';
import { runWrk, type WrkResult } from './wrk';

export interface FloorSample {
  wrk: WrkResult;
  /** The responder's CPU (user + system) per request, µs; null without /proc. */
  usPerRequest: number | null;
}

const RESPONDER = `
const net = require('node:net');
const body = 'x'.repeat(1024);
const response = Buffer.from('HTTP/1.1 200 OK\\r\\nContent-Type: application/octet-stream\\r\\nContent-Length: 1024\\r\\n\\r\\n' + body);
net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', () => socket.write(response));
  socket.on('error', () => {});
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

const START_TIMEOUT_MS = 10_000;

/** wrk with the given shape against the responder, `runs` times after 2 s untimed. */
export async function measureNodeFloor(
  wrk: string,
  threads: number,
  connections: number,
  seconds: number,
  runs: number,
): Promise<FloorSample[]> {
  const port = await freePort();
  const child = start(process.execPath, ['-e', RESPONDER, String(port)]);
  child.stdout!.resume();
  child.stderr!.resume();
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await accepts(port))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error('the Node responder did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const target = `http://127.0.0.1:${port}/`;
    await runWrk(wrk, target, threads, connections, 2);
    const samples: FloorSample[] = [];
    for (let rep = 0; rep < runs; rep++) {
      const before = processCpuSeconds(child.pid);
      const result = await runWrk(wrk, target, threads, connections, seconds);
      const after = processCpuSeconds(child.pid);
      const usPerRequest = before === null || after === null || result.requests === 0 ? null : ((after - before) * 1e6) / result.requests;
      samples.push({ wrk: result, usPerRequest });
    }
    return samples;
  } finally {
    await stop(child);
  }
}
