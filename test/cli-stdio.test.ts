/**
 * `tsmux stdio HOST:PORT --via serve`: stdin and stdout as one forwarded connection, as ssh's
 * ProxyCommand uses it; here it carries an HTTP request to a node:http server and back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CLI, startServeCli, tempDir } from './helpers/cli';

function runStdio(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'stdio', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

test(
  'stdio carries an HTTP request through serve and back; a destination not allowed is an error on stderr',
  { timeout: 30_000 },
  async (t) => {
    const app = http.createServer((req, res) => res.end(`hello through stdio, you asked for ${req.url}`));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    t.after(() => app.close());
    const appPort = (app.address() as AddressInfo).port;
    const work = await tempDir(t, 'stdio');
    const { port } = await startServeCli(t, ['--dir', work, '--allow-forward', `127.0.0.1:${appPort}`]);

    const ok = await runStdio([`127.0.0.1:${appPort}`, '--via', `127.0.0.1:${port}`], 'GET /proxied HTTP/1.0\r\nHost: x\r\n\r\n');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(ok.stdout, /hello through stdio, you asked for \/proxied$/);
    assert.equal(ok.stderr, '');

    const refused = await runStdio(['127.0.0.1:9', '--via', `127.0.0.1:${port}`], 'x');
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '', 'stdout carries only the connection');
    assert.match(refused.stderr, /tsmux stdio: .*forwarding to 127\.0\.0\.1:9 is not allowed by this server/);
  },
);
