// The seed README's second scenario: the client opens a stream in its connected callback;
// the server hears about it through the connection's `stream` event.
// Server and client run in this one process, on a free port; it exits when done.
import * as Muxer from 'tcp-stream-muxer';

// The server: every stream a client opens arrives with its meta object.
const server = new Muxer.MuxServer(0, { host: '127.0.0.1' });
server.on('connection', function (con) {
  con.on('stream', function (stream) {
    console.log('server got a stream with meta', JSON.stringify(stream.meta)); // {"type":"update","file":"xy.js"}
    stream.on('data', function (data) {
      console.log('server got data:', data.toString()); // console.log('Hello');
    });
    stream.on('end', function () {
      stream.end(); // streams are two-way: our side is done too
      server.close(); // stops accepting and closes the connection gracefully
    });
  });
});

server.on('listening', function () {
  // The client: once connected, open a stream; the ack runs once the server accepted it.
  const client = new Muxer.MuxClient(server.port, '127.0.0.1', function () {
    client.StreamPool.createStream({ type: 'update', file: 'xy.js' }, function (stream) {
      stream.end(Buffer.from("console.log('Hello');"));
    });
  });
  client.on('close', () => console.log('client closed'));
});
