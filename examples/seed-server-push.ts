// The seed README's first scenario: the server opens a stream toward each client that
// connects, with a meta object; the client listens for streams in its connected callback.
// Server and client run in this one process, on a free port; it exits when done.
import * as Muxer from 'tcp-stream-muxer';

const server = new Muxer.MuxServer(0, { host: '127.0.0.1' }, () => {
  // The client: once connected, it listens for the streams the server opens.
  const client = new Muxer.MuxClient(server.port, '127.0.0.1', function () {
    client.on('stream', function (stream) {
      console.log('client got a stream with meta', JSON.stringify(stream.meta)); // {"type":"update","file":"xy.js"}
      stream.on('data', function (data) {
        console.log('client got data:', data.toString()); // console.log('Hello');
      });
      stream.on('end', function () {
        stream.end(); // the server is done sending; so are we (streams are two-way)
        client.close(); // graceful: tells the server, then closes once streams are done
        server.close();
      });
    });
  });
});

// The server: for every connection, open a stream and send something on it. The ack
// callback runs once the client has accepted the stream.
server.on('connection', function (con) {
  con.StreamPool.createStream({ type: 'update', file: 'xy.js' }, function (stream) {
    stream.end(Buffer.from("console.log('Hello');"));
  });
});
