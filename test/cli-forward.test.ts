/**
 * tsmux forward → tsmux serve → destination, as real processes: several HTTP requests at
 * once through one mux connection to a node:http server, half-close both ways, resets and
 * refused destinations propagated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import type { TestContext } from 'node:test';
import { runCli, spawnCli, startServeCli, tempDir } from './helpers/cli';
import { withTimeout } from './helpers/async';

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function listen(t: TestContext, server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.close();
    if (server instanceof http.Server) server.closeAllConnections();
  });
  return (server.address() as net.AddressInfo).port;
}

/** serve with --allow-forward for `allowed`, and forward to `to` through it: the local port. */
async function forwardTo(t: TestContext, allowed: string[], to: string): Promise<{ port: number; forward: ReturnType<typeof spawnCli> }> {
  const work = await tempDir(t, 'forward');
  const { port: servePort } = await startServeCli(t, ['--dir', work, '--allow-forward', allowed.join(',')]);
  const forward = spawnCli(t, ['forward', '--listen', '127.0.0.1:0', '--to', to, '--via', `127.0.0.1:${servePort}`]);
  const match = await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  return { port: Number(match[1]), forward };
}

function request(port: number, pathname: string, body: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method: 'POST', agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.end(body);
  });
}

test('forward carries several HTTP requests at once to a node:http server and back', { timeout: 30_000 }, async (t) => {
  const app = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, bytes: body.length, sha256: sha256(body) }));
    });
  });
  const appPort = await listen(t, app);
  const { port } = await forwardTo(t, [`127.0.0.1:${appPort}`], `127.0.0.1:${appPort}`);
  const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(i === 0 ? 0 : i * 300_000));
  const responses = await Promise.all(bodies.map((body, i) => request(port, `/r${i}`, body)));
  responses.forEach((response, i) => {
    assert.equal(response.status, 200);
    assert.deepEqual(JSON.parse(response.body.toString()), { path: `/r${i}`, bytes: bodies[i].length, sha256: sha256(bodies[i]) });
  });
});

test('forward propagates half-close both ways, and a reset', { timeout: 30_000 }, async (t) => {
  // Reads until the client's FIN, then answers and closes its side; "reset" resets instead.
  const app = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).toString() === 'reset') socket.resetAndDestroy();
    });
    socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes, sha256 ${sha256(Buffer.concat(chunks))}`));
    socket.on('error', () => {});
  });
  const appPort = await listen(t, app);
  const { port } = await forwardTo(t, [`127.0.0.1:${appPort}`], `127.0.0.1:${appPort}`);

  const payload = randomBytes(700_000);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks).toString());
    });
    socket.on('error', reject);
    socket.end(payload); // half-close: we still read the answer
  });
  assert.equal(answer, `got ${payload.length} bytes, sha256 ${sha256(payload)}`);

  const outcome = await new Promise<string>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    socket.on('end', () => resolve('end'));
    socket.write('reset');
  });
  assert.equal(outcome, 'error ECONNRESET');
});

test('forward: a destination the server does not allow, or that refuses, closes the local connection', { timeout: 30_000 }, async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const { port, forward } = await forwardTo(t, [`127.0.0.1:${closedPort}`], '127.0.0.1:9');
  const closes = (target: number): Promise<string> =>
    new Promise((resolve) => {
      const socket = net.connect(target, '127.0.0.1');
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
      socket.on('close', () => resolve('closed'));
      socket.resume();
    });
  assert.match(await withTimeout(closes(port), 10_000, 'the refused connection to close'), /closed|error ECONNRESET/);
  await forward.waitFor(/not forwarded: .*forwarding to 127\.0\.0\.1:9 is not allowed by this server \[ERR_STREAM_REFUSED\]/);

  const { port: port2 } = await forwardTo(t, [`127.0.0.1:${closedPort}`], `127.0.0.1:${closedPort}`);
  assert.match(await withTimeout(closes(port2), 10_000, 'the reset connection to close'), /closed|error ECONNRESET/);
});

/** A TCP echo server: what it reads, it writes back, then ends when the client ends. */
function echoServer(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
}

/** Connects to `port`, sends `text`, half-closes, and resolves with everything read back. */
function echoThrough(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
    socket.end(text);
  });
}

test('forward: several -L at once, and --listen/--to pairs, over one connection', { timeout: 30_000 }, async (t) => {
  const first = await listen(t, echoServer());
  const second = await listen(t, echoServer());
  const work = await tempDir(t, 'forward-many');
  const allowed = `127.0.0.1:${first},127.0.0.1:${second}`;
  const { port: servePort, proc: serve } = await startServeCli(t, ['--dir', work, '--allow-forward', allowed]);
  const forward = spawnCli(t, [
    'forward',
    '-L',
    `0:127.0.0.1:${first}`,
    '-L',
    `127.0.0.1:0:127.0.0.1:${second}`,
    '--listen',
    '0',
    '--to',
    `127.0.0.1:${first}`,
    '--via',
    `127.0.0.1:${servePort}`,
  ]);
  await forward.waitFor(/(listening on 127\.0\.0\.1:\d+[\s\S]*){3}/);
  const ports = [...forward.stdout.matchAll(/listening on 127\.0\.0\.1:(\d+)/g)].map((match) => Number(match[1]));
  assert.equal(ports.length, 3);
  for (const [i, port] of ports.entries()) assert.equal(await echoThrough(port, `hello ${i}`), `hello ${i}`);
  assert.equal((serve.stdout.match(/^connection from /gm) ?? []).length, 1, 'one mux connection carries them all');
});

test('forward: 1,000 connections at once through one link, none refused (no per-client cap of 256)', { timeout: 60_000 }, async (t) => {
  const target = await listen(t, echoServer());
  const { port, forward } = await forwardTo(t, [`127.0.0.1:${target}`], `127.0.0.1:${target}`);
  const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => echoThrough(port, `connection ${i}`)));
  replies.forEach((reply, i) => assert.equal(reply, `connection ${i}`));
  assert.doesNotMatch(forward.stdout, /not forwarded|failed/);
});

test('forward: a destination that refuses is reported on the client with the reason, once per burst', { timeout: 30_000 }, async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const work = await tempDir(t, 'forward-refused');
  const { port: servePort, proc: serve } = await startServeCli(t, ['--dir', work, '--allow-forward', `127.0.0.1:${closedPort}`]);
  const forward = spawnCli(t, ['forward', '-L', `0:127.0.0.1:${closedPort}`, '--via', `127.0.0.1:${servePort}`]);
  const port = Number((await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
  await Promise.all(Array.from({ length: 50 }, () => echoThrough(port, 'x').catch(() => '')));
  const reason = new RegExp(
    `connection to 127\\.0\\.0\\.1:${closedPort} (failed|not forwarded): .*cannot connect to 127\\.0\\.0\\.1:${closedPort}: connect ECONNREFUSED`,
  );
  await forward.waitFor(reason);
  await forward.waitFor(/\(\d+ more like it within 1 s\)/, 5000);
  const clientLines = forward.stdout.split('\n').filter((line) => reason.test(line));
  assert.ok(clientLines.length <= 3, `a summary, not one line per connection:\n${forward.stdout}`);
  await serve.waitFor(/more like it within 1 s/, 5000);
  assert.ok(serve.stdout.split('\n').filter((line) => line.includes('ECONNREFUSED')).length <= 3, serve.stdout);
});

test('forward: --listen without its --to, or a malformed -L, is a usage error', async (t) => {
  const unpaired = await runCli(t, ['forward', '--listen', '0', '--via', '127.0.0.1:1']);
  assert.equal(unpaired.code, 2);
  assert.match(unpaired.stderr, /every --listen needs its --to/);
  const malformed = await runCli(t, ['forward', '-L', '8080:db', '--via', '127.0.0.1:1']);
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /-L: expected \[BIND:\]PORT:HOST:HOSTPORT/);
});

test('forward --retry-max 0: a graceful shutdown of serve reads as one, not as a lost connection', { timeout: 30_000 }, async (t) => {
  const target = await listen(t, echoServer());
  const work = await tempDir(t, 'forward-goaway');
  const { port: servePort, proc: serve } = await startServeCli(t, ['--dir', work, '--allow-forward', `127.0.0.1:${target}`]);
  const forward = spawnCli(t, ['forward', '-L', `0:127.0.0.1:${target}`, '--via', `127.0.0.1:${servePort}`, '--retry-max', '0']);
  await forward.waitFor(/listening on/);
  serve.child.kill('SIGTERM');
  await forward.waitFor(/the server is going away/);
  await forward.waitFor(/the server closed the connection after going away/);
  assert.doesNotMatch(forward.stdout, /connection to the server lost/);
  assert.equal((await forward.exited()).code, 1);
});

test(
  'forward heals: serve killed with SIGKILL and started again, the port never closes and connections work again',
  { timeout: 40_000 },
  async (t) => {
    const target = await listen(t, echoServer());
    const work = await tempDir(t, 'forward-heal');
    const serveArgs = ['--dir', work, '--allow-forward', `127.0.0.1:${target}`];
    const first = await startServeCli(t, serveArgs);
    const servePort = first.port;
    const forward = spawnCli(t, ['forward', '-L', `0:127.0.0.1:${target}`, '--via', `127.0.0.1:${servePort}`, '--retry-delay-max', '0.5']);
    const port = Number((await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    assert.equal(await echoThrough(port, 'before'), 'before');
    first.proc.child.kill('SIGKILL');
    await forward.waitFor(/connection to the server lost .*reconnecting, ports stay open/);
    // The port stays open: a connection made now waits for the link.
    const during = echoThrough(port, 'during');
    const second = spawnCli(t, ['serve', '--port', String(servePort), ...serveArgs]);
    await second.waitFor(/listening on/);
    await forward.waitFor(/re-established/, 10_000);
    assert.equal(await withTimeout(during, 10_000, 'the connection made during the outage'), 'during');
    assert.equal(await echoThrough(port, 'after'), 'after');
    assert.equal((forward.stdout.match(/connection to the server lost/g) ?? []).length, 1, 'said once, not per attempt');
  },
);

test(
  'forward -R: serve listens where --allow-reverse permits and hands each connection to the client; elsewhere it refuses',
  { timeout: 30_000 },
  async (t) => {
    const target = await listen(t, echoServer()); // on the client's side
    const work = await tempDir(t, 'forward-reverse');
    const { port: servePort, proc: serve } = await startServeCli(t, ['--dir', work, '--allow-reverse', '127.0.0.1:*']);
    const forward = spawnCli(t, ['forward', '-R', `0:127.0.0.1:${target}`, '--via', `127.0.0.1:${servePort}`]);
    const remotePort = Number((await forward.waitFor(/the server listens on 127\.0\.0\.1:(\d+) for /))[1]);
    await serve.waitFor(/reverse forward/);
    assert.equal(await echoThrough(remotePort, 'reversed'), 'reversed');
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => echoThrough(remotePort, `r${i}`)));
    many.forEach((reply, i) => assert.equal(reply, `r${i}`));

    const refused = await runCli(t, ['forward', '-R', `0.0.0.0:0:127.0.0.1:${target}`, '--via', `127.0.0.1:${servePort}`]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stdout,
      /reverse forward 0\.0\.0\.0:0 -> 127\.0\.0\.1:\d+ refused: .*not allowed by this server \(--allow-reverse\)/,
    );
  },
);

test(
  'forward -R after serve is killed and started again: the reverse forward is registered again and works',
  { timeout: 40_000 },
  async (t) => {
    const target = await listen(t, echoServer());
    const remotePort = await freePort();
    const work = await tempDir(t, 'forward-reverse-heal');
    const serveArgs = ['--dir', work, '--allow-reverse', '127.0.0.1:*'];
    const first = await startServeCli(t, serveArgs);
    const forward = spawnCli(t, [
      'forward',
      '-R',
      `${remotePort}:127.0.0.1:${target}`,
      '--via',
      `127.0.0.1:${first.port}`,
      '--retry-delay-max',
      '0.5',
    ]);
    await forward.waitFor(new RegExp(`the server listens on 127\\.0\\.0\\.1:${remotePort} for `));
    assert.equal(await echoThrough(remotePort, 'first'), 'first');
    first.proc.child.kill('SIGKILL');
    await forward.waitFor(/connection to the server lost/);
    await restartAndReregister(t, first.port, serveArgs, forward);
    assert.equal(await echoThrough(remotePort, 'second'), 'second');
  },
);

test(
  'forward after serve is stopped with SIGTERM: the connection in flight finishes, the going-away is said, and -L and -R work again once serve is back',
  { timeout: 40_000 },
  async (t) => {
    const target = await listen(t, echoServer());
    const remotePort = await freePort();
    const work = await tempDir(t, 'forward-sigterm');
    const serveArgs = ['--dir', work, '--allow-forward', `127.0.0.1:${target}`, '--allow-reverse', '127.0.0.1:*', '--grace', '10'];
    const first = await startServeCli(t, serveArgs);
    const forward = spawnCli(t, [
      'forward',
      '-L',
      `0:127.0.0.1:${target}`,
      '-R',
      `${remotePort}:127.0.0.1:${target}`,
      '--via',
      `127.0.0.1:${first.port}`,
      '--retry-delay-max',
      '0.5',
    ]);
    const port = Number((await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    await forward.waitFor(/the server listens on/);

    // A connection in flight when serve is told to stop: it goes on until it ends by itself.
    const socket = net.connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    let reply = '';
    socket.on('data', (chunk: string) => (reply += chunk));
    const ended = new Promise<void>((resolve, reject) => {
      socket.once('end', resolve);
      socket.once('error', reject);
    });
    socket.write('before ');
    await withTimeout(
      (async () => {
        while (reply !== 'before ') await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      10_000,
      'the first echo',
    );
    first.proc.child.kill('SIGTERM');
    await forward.waitFor(/the server is going away/);
    socket.end('after');
    await withTimeout(ended, 10_000, 'the in-flight connection to end');
    assert.equal(reply, 'before after');

    assert.equal((await first.proc.exited()).code, 0);
    await forward.waitFor(/reconnecting, ports stay open/);
    await restartAndReregister(t, first.port, serveArgs, forward);
    assert.equal(await echoThrough(port, 'local'), 'local');
    assert.equal(await echoThrough(remotePort, 'remote'), 'remote');
    assert.doesNotMatch(forward.stdout, /connection to the server lost/, 'a graceful shutdown is not reported as a crash');
  },
);

test('forward --wait: a connection accepted while the link is down is closed after that long', { timeout: 30_000 }, async (t) => {
  const target = await listen(t, echoServer());
  const work = await tempDir(t, 'forward-wait');
  const first = await startServeCli(t, ['--dir', work, '--allow-forward', `127.0.0.1:${target}`]);
  const forward = spawnCli(t, ['forward', '-L', `0:127.0.0.1:${target}`, '--via', `127.0.0.1:${first.port}`, '--wait', '1']);
  const port = Number((await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
  first.proc.child.kill('SIGKILL');
  await forward.waitFor(/connection to the server lost/);
  const started = Date.now();
  const outcome = await withTimeout(
    new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('data', () => {});
      socket.once('end', () => resolve('closed'));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
      socket.write('nobody hears this');
    }),
    10_000,
    'the waiting connection to be closed',
  );
  assert.match(outcome, /closed|error ECONNRESET/);
  assert.ok(Date.now() - started >= 900, `closed after ${Date.now() - started} ms, not after --wait's 1 s`);
});

/** A port nothing listens on right now (the kernel's pick for port 0, released at once). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Starts serve again on `port`; resolves once the forward is back and has its -R registered again. */
async function restartAndReregister(
  t: TestContext,
  port: number,
  serveArgs: string[],
  forward: ReturnType<typeof spawnCli>,
): Promise<void> {
  const second = spawnCli(t, ['serve', '--port', String(port), ...serveArgs]);
  await second.waitFor(/listening on/);
  await forward.waitFor(/re-established/, 10_000);
  await withTimeout(
    (async () => {
      while ((forward.stdout.match(/the server listens on/g) ?? []).length < 2) await new Promise((resolve) => setTimeout(resolve, 50));
    })(),
    10_000,
    'the reverse forward registered again',
  );
}
