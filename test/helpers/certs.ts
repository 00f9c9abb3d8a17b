/**
 * Certificates made at test time by the openssl command line: a P-256 key and a certificate,
 * self-signed or signed by a test CA. Nothing is checked in, nothing outlives the test.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const OPENSSL = '/usr/bin/openssl';

/** Why certificate tests are skipped, or false when openssl is here. */
export const NO_OPENSSL: string | false = !existsSync(OPENSSL) && 'openssl is not installed';

/** A fresh P-256 key and a certificate signed by `issuer` (self-signed CA when absent). */
export function makeCert(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
  issuer?: { cert: string; key: string },
): { key: string; cert: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  const run = (args: string[]): void => {
    execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  // A new P-256 key, unencrypted, for `subject`.
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-subj', subject];
  if (!issuer) {
    run(['req', '-x509', ...newKey, '-out', cert, '-days', '2', ...extensions.flatMap((e) => ['-addext', e])]);
    return { key, cert };
  }
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions.join('\n')}\n`);
  run(['req', '-new', ...newKey, '-out', csr]);
  run([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    issuer.cert,
    '-CAkey',
    issuer.key,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { key, cert };
}

/** A self-signed certificate for 127.0.0.1 (and localhost): what a test server presents and its client trusts. */
export function makeSelfSignedCert(dir: string, name = 'self'): { key: string; cert: string } {
  return makeCert(dir, name, '/CN=localhost', ['subjectAltName=IP:127.0.0.1,DNS:localhost']);
}
