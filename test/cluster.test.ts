/**
 * MuxServer under node:cluster: examples/cluster.ts forks two workers that share one port;
 * clients connecting there are served by both workers (each reports its pid on a stream),
 * and SIGTERM stops the whole tree cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { MuxClient } from '../src/index';
import { closedPort, HOST } from './helpers/mux';
import { nextEvent, waitFor, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';

const EXAMPLE = path.join(__dirname, '..', 'examples', 'cluster.ts');

/** Opens a connection and a stream; resolves with the pid of the worker that answered. */
async function servedBy(port: number, i: number): Promise<number> {
  const client = new MuxClient(port, HOST);
  client.on('error', () => {});
  try {
    await nextEvent(client, 'connect', 5000);
    const stream = await withTimeout(client.StreamPool.createStream({ client: i }), 5000, 'createStream');
    stream.end();
    const reply = JSON.parse((await collect(stream, 5000)).toString()) as { pid: number; meta: unknown };
    assert.deepEqual(reply.meta, { client: i }, 'the worker saw our meta');
    return reply.pid;
  } finally {
    client.destroy();
  }
}

test('two cluster workers share one port, and connections are served by both', { timeout: 30_000 }, async (t) => {
  // Port 0 cannot be shared by workers that listen on their own: pick a free port first.
  const port = await closedPort();
  const child = spawn(process.execPath, ['--import', 'tsx', EXAMPLE], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, PORT: String(port), WORKERS: '2' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so the whole tree can be killed at the end
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (code, signal) => resolve([code, signal])),
  );
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // the primary and its workers, if anything is left
    } catch {
      // already gone
    }
  });

  await waitFor(() => /2 workers listening/.test(stdout) || child.exitCode !== null, 15_000, `the cluster to listen (stderr: ${stderr})`);
  assert.match(stdout, new RegExp(`primary ${child.pid}: 2 workers listening on ${HOST.replace(/\./g, '\\.')}:${port}`));

  // Sequential connections: the primary hands them to the workers in turn.
  const pids: number[] = [];
  for (let i = 0; i < 6; i++) pids.push(await servedBy(port, i));
  const workers = new Set(pids);
  assert.equal(workers.size, 2, `served by two different workers: ${pids.join(', ')}`);
  assert.ok(!workers.has(child.pid!), 'the primary only distributes, the workers serve');

  // Several at once are served too.
  const parallel = await Promise.all([0, 1, 2, 3].map((i) => servedBy(port, 10 + i)));
  assert.ok(
    parallel.every((pid) => workers.has(pid)),
    'the same two workers serve concurrent connections',
  );

  child.kill('SIGTERM');
  const [code, signal] = await withTimeout(exited, 10_000, 'the cluster to stop on SIGTERM');
  assert.equal(signal, null);
  assert.equal(code, 0, `clean exit (stderr: ${stderr})`);
  assert.match(stdout, /all workers stopped/);
});
