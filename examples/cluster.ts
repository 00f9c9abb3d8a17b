// Every core of the machine: node:cluster forks workers, and each runs its own MuxServer on
// one shared port. The primary accepts TCP connections and hands them to the workers in
// turn; each worker then serves its connections (and all their streams) by itself.
//
//   PORT=12345 WORKERS=4 npx tsx examples/cluster.ts     (Ctrl-C or SIGTERM stops it cleanly)
//
// Every stream gets one reply: the pid of the worker serving it, so you can see the spread.
import cluster from 'node:cluster';
import * as os from 'node:os';
import { MuxServer } from 'tcp-stream-muxer';

const PORT = Number(process.env.PORT || 12345);
const HOST = '127.0.0.1'; // loopback for the example; omit `host` to serve every interface
const WORKERS = Number(process.env.WORKERS || os.availableParallelism());

if (cluster.isPrimary) {
  let stopping = false;
  let listening = 0;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('listening', () => {
    if (++listening === WORKERS) console.log(`primary ${process.pid}: ${WORKERS} workers listening on ${HOST}:${PORT}`);
  });
  // A worker that dies on its own is replaced; during shutdown they are not.
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.log(`worker ${worker.process.pid} died (${signal || code}), starting another`);
      cluster.fork();
    } else if (Object.keys(cluster.workers ?? {}).length === 0) console.log('all workers stopped');
  });
  const stop = (): void => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send('shutdown');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const server = new MuxServer(PORT, { host: HOST });
  server.on('connection', (con) => {
    con.on('error', () => {}); // a misbehaving client must not take the worker down
    con.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.end(JSON.stringify({ pid: process.pid, meta: stream.meta }));
      stream.resume(); // nothing to read here; let the peer's end() through
    });
  });
  // Graceful: stop accepting, let open streams finish, then leave the cluster.
  process.on('message', (message) => {
    if (message === 'shutdown') server.close(() => process.disconnect?.());
  });
}
