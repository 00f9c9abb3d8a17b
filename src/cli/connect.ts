/** The client side of every command: one MuxClient, with the token and TLS trust given. */
import { readFileSync } from 'node:fs';
import { MuxClient, MuxError, type MuxClientOptions } from '../index';
import { formatHostPort, type HostPort } from './args';

export interface ConnectOptions {
  token?: string | undefined;
  /** PEM file of the CA (or self-signed certificate) to trust: connect over TLS. */
  tlsCa?: string | undefined;
  /** Reconnect when the link is lost (and keep trying to make the first one): MuxClient's option. */
  reconnect?: MuxClientOptions['reconnect'];
  /** How long a stream waits to be opened (and for the link while it heals), ms: MuxClient's option. */
  openTimeout?: number | undefined;
  /** Gives up connecting (the promise rejects with ERR_ABORTED). */
  signal?: AbortSignal | undefined;
}

/** Connects to a `tsmux serve` and resolves once the handshake (and authentication) is done. */
export function connect(target: HostPort, options: ConnectOptions): Promise<MuxClient> {
  const clientOptions: MuxClientOptions = {};
  if (options.token !== undefined) clientOptions.hello = { token: options.token };
  if (options.tlsCa !== undefined) clientOptions.tls = { ca: readFileSync(options.tlsCa) };
  if (options.reconnect) clientOptions.reconnect = options.reconnect;
  if (options.openTimeout !== undefined) clientOptions.openTimeout = options.openTimeout;
  const client = new MuxClient({ ...clientOptions, port: target.port, host: target.host });
  const { signal } = options;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      client.off('error', onError);
      client.on('error', () => {});
      client.destroy();
      reject(new MuxError('ERR_ABORTED', 'connecting aborted', { cause: signal?.reason }));
    };
    const onError = (err: Error): void => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    client.once('error', onError);
    client.once('connect', () => {
      signal?.removeEventListener('abort', onAbort);
      client.off('error', onError);
      resolve(client);
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One line for the user about a failure to connect or transfer. */
export function describeError(err: unknown, target?: HostPort): string {
  if (err instanceof MuxError) {
    const where = target ? ` ${formatHostPort(target)}` : '';
    switch (err.code) {
      case 'ERR_AUTH_FAILED':
        return `authentication failed: the server${where} rejected the token (check --token) [ERR_AUTH_FAILED]`;
      case 'ERR_CONNECT_FAILED':
        return `cannot connect to${where}: ${err.cause instanceof Error ? err.cause.message : err.message} [ERR_CONNECT_FAILED]`;
      default:
        return `${err.message} [${err.code}]`;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** Closes `client` gracefully, or cuts it after `ms`. */
export function closeClient(client: MuxClient, ms = 3000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, ms);
    timer.unref();
    client.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
