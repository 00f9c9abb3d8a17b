/**
 * How the bench server is set up, shared by the server (server.ts) and the clients: TLS with
 * one cipher for everyone, and the keepalive interval. Kept apart from transports.ts so that
 * the server, compiled on its own (compiled-server.ts), loads nothing but this and the library.
 */
import { readFileSync } from 'node:fs';
import type * as tls from 'node:tls';

/**
 * How the bench server is set up, beyond its implementation: TLS (one cipher for everyone,
 * so the comparison is of framing and writes, not of ciphers) and the keepalive interval.
 */
export interface ServerSetup {
  /** PEM files of a self-signed certificate for 127.0.0.1; absent for plain TCP. */
  tls?: TlsFiles;
  /** Keepalive interval for the mux server (and, in the connections scenario, http2's pings), in ms. */
  keepAliveInterval?: number;
}

export interface TlsFiles {
  key: string;
  cert: string;
}

/** TLS 1.3 with AES-128-GCM on both sides of every TLS run: what `scp -c aes128-gcm` uses too. */
export const TLS_CIPHER = 'TLS_AES_128_GCM_SHA256';
export const TLS_VERSION = 'TLSv1.3';

/** Options for tls.connect that pin the bench cipher and trust the bench certificate. */
export function tlsClientOptions(files: TlsFiles): tls.ConnectionOptions {
  return {
    ca: readFileSync(files.cert),
    ciphers: TLS_CIPHER,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
  };
}

/** Options for tls.createServer, likewise. */
export function tlsServerOptions(files: TlsFiles): tls.TlsOptions {
  return {
    key: readFileSync(files.key),
    cert: readFileSync(files.cert),
    ciphers: TLS_CIPHER,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
  };
}
