// ESM entry: re-exports the CommonJS build, so `import` and `require` share one
// implementation and `instanceof` holds across them.
import cjs from '../cjs/index.js';

export const {
  MuxServer,
  MuxClient,
  MuxConnection,
  MuxStream,
  wrap,
  StreamPool,
  MuxError,
  isProtocolError,
  DEFAULTS,
  SERVER_DEFAULTS,
  RECONNECT_DEFAULTS,
  PROTOCOL_VERSION,
  FrameType,
  Flag,
  WireErrorCode,
  util,
} = cjs;
export default cjs;
