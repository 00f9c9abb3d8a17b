// Meta typed end to end, hooks and util, under strict with no annotation on any listener.
import {
  MuxServer,
  MuxClient,
  MuxConnection,
  util,
  wrap,
  type AcceptVerdict,
  type ClientInfo,
  type JsonValue,
  type MuxStream,
} from 'tcp-stream-muxer';
import { expectType, type Equal, type Expect } from './expect.mjs';

/** What an application names: an interface, with an optional field and a nested list. */
interface UpdateMeta {
  type: 'update';
  file: string;
  size?: number;
  tags?: string[];
}
/** The same kind of thing as a type alias. */
type ChatMeta = { type: 'chat'; room: string; since: [number, number] };

const client = new MuxClient(12345, async () => {
  // Named: the stream's meta has the shape the application gave.
  const update = await client.StreamPool.createStream<UpdateMeta>({ type: 'update', file: 'xy.js' });
  expectType<string>(update.meta.file);
  type _update = Expect<Equal<typeof update, MuxStream<UpdateMeta>>>;

  // Inferred from the literal.
  const chat = await client.StreamPool.createStream({ type: 'chat', room: 'ops', since: [1, 2] });
  expectType<string>(chat.meta.room);
  const typedChat: MuxStream<ChatMeta> = await client.StreamPool.createStream<ChatMeta>({ type: 'chat', room: 'ops', since: [1, 2] });

  // With the seed's ack callback: the stream comes back at once and again, accepted, in ack.
  const opened = client.StreamPool.createStream<UpdateMeta>({ type: 'update', file: 'a' }, (stream) => {
    expectType<UpdateMeta>(stream.meta);
    stream.end('console.log(1)');
  });
  type _opened = Expect<Equal<typeof opened, MuxStream<UpdateMeta>>>;

  // No meta: null.
  const bare = await client.StreamPool.createStream();
  type _bare = Expect<Equal<typeof bare.meta, null>>;

  // Any JSON value passes through, so a relay can forward what it received.
  const relayed = await client.StreamPool.createStream(update.meta);
  const again = await relay(chat.meta);
  type _again = Expect<Equal<typeof again.meta, JsonValue>>;

  // A stream whose meta type is a type alias is still a MuxStream wherever one is expected;
  // one named by an interface fits MuxStream<unknown> (TypeScript never lets an interface
  // match JsonValue's index signature).
  const streams: MuxStream[] = [chat, typedChat, bare, again];
  const any: MuxStream<unknown>[] = [update, opened, relayed, ...streams];
  void any;

  // What JSON cannot carry does not compile.
  // @ts-expect-error a function is not JSON
  void client.StreamPool.createStream({ type: 'update', run: () => 1 });
  // @ts-expect-error a bigint is not JSON
  void client.StreamPool.createStream({ size: 1n });
  // @ts-expect-error a Date is not JSON (it would arrive as a string)
  void client.StreamPool.createStream({ when: new Date() });
  // @ts-expect-error undefined is not JSON
  void client.StreamPool.createStream(undefined, () => {});
  // @ts-expect-error the named shape is checked
  void client.StreamPool.createStream<UpdateMeta>({ type: 'chat', file: 'x' });
  // @ts-expect-error and its fields' types
  void client.StreamPool.createStream<UpdateMeta>({ type: 'update', file: 42 });
  // @ts-expect-error a received meta is JSON, not any
  expectType<number>(chat.meta.room);
});

async function relay(meta: JsonValue): Promise<MuxStream> {
  return client.StreamPool.createStream(meta);
}

// Received streams carry JSON metas; narrowing works as on any JsonValue.
const server = new MuxServer(12345, {
  // Hooks are fully typed: hello and meta are JSON values, info and the connection are known.
  authenticate: (hello, info) => {
    expectType<JsonValue>(hello);
    expectType<ClientInfo>(info);
    expectType<string | undefined>(info.remoteAddress);
    return typeof hello === 'object' && hello !== null && !Array.isArray(hello) && hello.token === 'secret';
  },
  acceptStream: async (meta, con) => {
    expectType<JsonValue>(meta);
    expectType<MuxConnection>(con);
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return 'meta must be an object';
    return meta.type === 'update';
  },
});
server.on('connection', (con) => {
  con.on('stream', (stream) => {
    expectType<JsonValue>(stream.meta);
    const meta = stream.meta;
    if (typeof meta === 'object' && meta !== null && !Array.isArray(meta) && meta.type === 'update') {
      expectType<JsonValue>(meta.file);
    }
    // @ts-expect-error stream.meta is JSON, not any: it must be narrowed first
    void stream.meta.file;
  });
});

// Verdicts: a boolean, a reason, nothing; sync or async.
const verdicts: ((meta: JsonValue) => AcceptVerdict | Promise<AcceptVerdict>)[] = [
  () => true,
  () => 'busy',
  () => undefined,
  async () => {},
  async (meta) => meta !== null,
];
new MuxServer(0, { acceptStream: verdicts[0] });
// @ts-expect-error authenticate answers with a boolean
new MuxServer(0, { authenticate: () => 'yes' });
// @ts-expect-error acceptStream answers with a boolean or a reason
new MuxServer(0, { acceptStream: () => 42 });
// @ts-expect-error unknown options do not compile
new MuxServer(0, { noSuchOption: true });
// @ts-expect-error hello must be JSON
new MuxClient({ port: 1, hello: { at: new Date() } });

// util: file transfer on any Duplex, over any connection's pool.
export async function files(con: MuxConnection, stream: MuxStream<UpdateMeta>): Promise<void> {
  const sent = await util.sendFile('a.bin', stream, { onProgress: (bytes, total) => expectType<number>(bytes + total) });
  expectType<{ size: number; sha256: string }>(sent);
  const stored = await util.receiveFile('b.bin', stream, { overwrite: false, maxSize: 1024, expectedSize: 10 });
  expectType<string>(stored.sha256);
  util.sendFile('a.bin', stream, (err, result) => {
    expectType<Error | null>(err);
    expectType<number | undefined>(result?.size);
  });
  await util.sendFileOver(con, 'a.bin', { name: 'dir/a.bin', meta: { owner: 'ops' }, signal: AbortSignal.timeout(1000) });
  await util.sendFileOver(con.StreamPool, 'a.bin');
  // @ts-expect-error extra meta must be JSON
  await util.sendFileOver(con, 'a.bin', { meta: { at: new Date() } });
  const wrapped = wrap(stream, { role: 'server', acceptStream: (meta) => meta !== null });
  wrapped.on('stream', (inner) => expectType<JsonValue>(inner.meta));
}
