/**
 * `tsmux stdio HOST:PORT --via serve`: stdin and stdout as one forwarded connection, as ssh's
 * ProxyCommand uses it: it carries an HTTP request to a node:http server and back, and a real
 * ssh session to a throwaway sshd (skipped without OpenSSH; .ci/run installs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { startSshd } from '../bench/cli/sshd';
import { SSHD } from '../bench/cli/tools';
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

const SSH = '/usr/bin/ssh';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';
const noOpenSsh = [SSHD, SSH, SSH_KEYGEN].find((file) => !existsSync(file));

test(
  "ssh -o ProxyCommand='tsmux stdio %h:%p --via serve' logs in to a real sshd and runs a command",
  { timeout: 60_000, skip: noOpenSsh ? `${noOpenSsh} not found: install the Debian packages openssh-server openssh-client` : false },
  async (t) => {
    const work = await tempDir(t, 'stdio-ssh');
    const sshd = await startSshd(path.join(work, 'sshd'), SSH_KEYGEN, SSH);
    t.after(() => sshd.stop());
    const { port } = await startServeCli(t, ['--dir', work, '--allow-forward', `127.0.0.1:${sshd.port}`]);
    const proxy = `${process.execPath} ${CLI} stdio %h:%p --via 127.0.0.1:${port}`;
    const ssh = spawn(SSH, [...sshd.sshOptions, '-o', `ProxyCommand=${proxy}`, sshd.target, 'echo through tsmux; cat'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    ssh.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    ssh.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    ssh.stdin.end('sent over the session\n');
    const timer = setTimeout(() => ssh.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => ssh.once('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'through tsmux\nsent over the session\n');
  },
);
