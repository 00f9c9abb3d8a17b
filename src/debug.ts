import { debuglog } from 'node:util';

/**
 * Opt-in diagnostics on stderr: run with `NODE_DEBUG=tcp-stream-muxer` to see connection-level
 * events (handshake, ready, GO_AWAY, protocol failures, refused and reset streams, close).
 * Never called per frame or per chunk. When the variable is off, `debug.enabled` is false and
 * callers skip building their arguments, so logging costs one property read.
 */
export const debug = debuglog('tcp-stream-muxer');
