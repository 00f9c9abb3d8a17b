// Typed events: every listener below is written without annotations, as users write them,
// and `expectType` checks what TypeScript inferred. Lines marked @ts-expect-error must not
// compile. Compiled by test/types.test.ts as an ES module (.mts) and as CommonJS (.cts).
import { once, on } from 'node:events';
import type * as net from 'node:net';
import type { Readable } from 'node:stream';
import { MuxServer, MuxClient, MuxConnection, MuxError, wrap, type MuxStream } from 'tcp-stream-muxer';
import { expectType, type Equal, type Expect } from './expect.mjs';

// The newcomer's example from the issue, under strict with no annotation.
const server = new MuxServer(0);
server.on('connection', (con) => {
  con.on('stream', (stream) => {
    stream.pipe(stream);
  });
});

// Every MuxServer event.
server.on('listening', () => {});
server.once('connection', (con) => expectType<MuxConnection>(con));
server.on('clientError', (err, socket) => {
  expectType<MuxError>(err);
  expectType<net.Socket>(socket);
  type _code = Expect<Equal<typeof err.code, MuxError['code']>>;
});
server.on('error', (err) => expectType<string | undefined>(err.code));
server.on('close', () => {});
server.prependListener('connection', (con) => con.close());
server.prependOnceListener('connection', (con) => con.destroy());
server.addListener('connection', (con) => con.ping());
const onConnection = (con: MuxConnection): void => con.close();
server.on('connection', onConnection).off('connection', onConnection).removeListener('connection', onConnection);
expectType<number>(server.port);

// Every connection event, on a server's connection and on a client.
const client = new MuxClient(0, () => {});
for (const con of [client, new MuxConnection(null, { role: 'server' })]) {
  con.on('connect', () => {});
  con.on('stream', (stream) => expectType<MuxStream>(stream));
  con.on('goaway', (code, reason) => {
    expectType<number>(code);
    expectType<string>(reason);
  });
  con.on('error', (err) => expectType<MuxError>(err));
  con.on('close', (hadError) => expectType<boolean>(hadError));
}
expectType<net.Socket | null>(client.transportSocket);

// The Duplex events a MuxStream keeps.
declare const stream: MuxStream;
stream.on('data', (chunk) => expectType<Buffer>(chunk));
stream.on('data', (chunk: Buffer | string) => chunk.length); // a string after setEncoding()
stream.once('end', () => {});
stream.on('close', () => {});
stream.on('error', (err) => expectType<Error>(err));
stream.on('drain', () => {});
stream.on('finish', () => {});
stream.on('readable', () => stream.read());
stream.on('pause', () => {}).on('resume', () => {});
stream.on('pipe', (source) => expectType<Readable>(source));
stream.on('unpipe', (source) => expectType<Readable>(source));

// A known name with a wrong listener does not compile.
// @ts-expect-error a connection is not a number
server.on('connection', (con: number) => con);
// @ts-expect-error clientError's first argument is a MuxError
server.on('clientError', (err: string) => err);
// @ts-expect-error a stream event carries a MuxStream
client.on('stream', (stream: string) => stream);
// @ts-expect-error goaway's code is a number
client.on('goaway', (code: string) => code);
// @ts-expect-error data is a Buffer (or a string after setEncoding), never a number
stream.on('data', (chunk: number) => chunk);
// @ts-expect-error close carries whether the connection failed
client.once('close', (hadError: string) => hadError);
// @ts-expect-error emit checks the arguments of a known event
server.emit('connection', 42);
// @ts-expect-error and their number
client.emit('goaway', 0);

// Unknown event names compile, as on any EventEmitter.
server.on('my-event', (anything) => expectType<unknown>(anything));
client.on('my-event', (text: string, count: number) => text.repeat(count));
client.emit('my-event', 'x', 3);

// A listener may take fewer or more parameters; `resolve` fits a no-argument event.
export const listening = new Promise((resolve) => server.once('listening', resolve));
export const closed = new Promise((resolve) => client.once('close', resolve));
export const ready = new Promise<void>((resolve) => client.once('connect', resolve));

// events.once / events.on stay usable.
export async function viaEventsHelpers(): Promise<void> {
  const [con] = await once(server, 'connection');
  void con;
  for await (const args of on(client, 'stream')) void args;
  const connection = wrap(stream, { role: 'client' });
  connection.on('stream', (inner) => expectType<MuxStream>(inner));
}

type _Listener = Expect<Equal<Parameters<Parameters<typeof server.on<'connection'>>[1]>[0], MuxConnection>>;
