import { WireErrorCode } from './protocol/constants';

/**
 * Every `code` a {@link MuxError} can carry. The strings are stable API: switch on them.
 * README.md ("Error codes") describes each one.
 */
export type MuxErrorCode =
  | 'ERR_STREAM_RESET'
  | 'ERR_CONNECTION_CLOSED'
  | 'ERR_CONNECT_FAILED'
  | 'ERR_TLS_HANDSHAKE'
  | 'ERR_PROXY_HEADER'
  | 'ERR_PROXY_UNTRUSTED'
  | 'ERR_PROTOCOL'
  | 'ERR_FLOW_CONTROL'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_HANDSHAKE_FAILED'
  | 'ERR_HANDSHAKE_TIMEOUT'
  | 'ERR_VERSION_MISMATCH'
  | 'ERR_AUTH_FAILED'
  | 'ERR_STREAM_REFUSED'
  | 'ERR_STREAM_LIMIT'
  | 'ERR_META_TOO_LARGE'
  | 'ERR_INVALID_META'
  | 'ERR_GOING_AWAY'
  | 'ERR_OPEN_TIMEOUT'
  | 'ERR_KEEPALIVE_TIMEOUT'
  | 'ERR_IDLE_TIMEOUT'
  | 'ERR_BUFFER_LIMIT'
  | 'ERR_OVERLOADED'
  | 'ERR_RATE_LIMIT'
  | 'ERR_INVALID_CONFIG'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_FILE_TRANSFER'
  | 'ERR_FILE_MISMATCH'
  | 'ERR_FILE_REJECTED'
  | 'ERR_STATUS_TIMEOUT'
  | 'ERR_ABORTED';

/** Options of the {@link MuxError} constructor. */
export interface MuxErrorOptions {
  /** The underlying error, as `Error`'s own `cause`. */
  cause?: unknown;
  /** The code this error puts on the wire when it closes a stream or connection. */
  wireCode?: WireErrorCode;
}

/** The one error class of this library: a message plus a stable string {@link MuxError.code}. */
export class MuxError extends Error {
  /** Stable identifier of what went wrong, for `switch`: see the README's error codes. */
  readonly code: MuxErrorCode;
  /** Code sent to the peer in RESET / REFUSE / GO_AWAY when this error ends something. */
  readonly wireCode: WireErrorCode;

  constructor(code: MuxErrorCode, message: string, options: MuxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MuxError';
    this.code = code;
    this.wireCode = options.wireCode ?? defaultWireCode(code);
  }
}

/** True for errors that mean the peer broke the protocol (the connection goes away). */
export function isProtocolError(err: unknown): err is MuxError {
  return err instanceof MuxError && PROTOCOL_CODES.has(err.code);
}

const PROTOCOL_CODES: ReadonlySet<MuxErrorCode> = new Set<MuxErrorCode>([
  'ERR_PROTOCOL',
  'ERR_FLOW_CONTROL',
  'ERR_FRAME_TOO_LARGE',
  'ERR_INVALID_META',
  'ERR_VERSION_MISMATCH',
  'ERR_HANDSHAKE_FAILED',
]);

function defaultWireCode(code: MuxErrorCode): WireErrorCode {
  switch (code) {
    case 'ERR_PROTOCOL':
    case 'ERR_INVALID_META':
    case 'ERR_VERSION_MISMATCH':
    case 'ERR_HANDSHAKE_FAILED':
      return WireErrorCode.PROTOCOL_ERROR;
    case 'ERR_FLOW_CONTROL':
      return WireErrorCode.FLOW_CONTROL_ERROR;
    case 'ERR_BUFFER_LIMIT':
    case 'ERR_OVERLOADED':
      return WireErrorCode.OVERLOADED;
    case 'ERR_RATE_LIMIT':
      return WireErrorCode.ENHANCE_YOUR_CALM;
    case 'ERR_FRAME_TOO_LARGE':
      return WireErrorCode.FRAME_TOO_LARGE;
    case 'ERR_STREAM_LIMIT':
      return WireErrorCode.STREAM_LIMIT;
    case 'ERR_STREAM_REFUSED':
      return WireErrorCode.REFUSED;
    case 'ERR_META_TOO_LARGE':
      return WireErrorCode.META_TOO_LARGE;
    case 'ERR_GOING_AWAY':
      return WireErrorCode.GOING_AWAY;
    case 'ERR_AUTH_FAILED':
      return WireErrorCode.AUTH_FAILED;
    case 'ERR_KEEPALIVE_TIMEOUT':
      return WireErrorCode.KEEPALIVE_TIMEOUT;
    case 'ERR_IDLE_TIMEOUT':
      return WireErrorCode.IDLE_TIMEOUT;
    case 'ERR_OPEN_TIMEOUT':
      return WireErrorCode.OPEN_TIMEOUT;
    case 'ERR_STREAM_RESET':
    case 'ERR_ABORTED':
      return WireErrorCode.CANCEL;
    default:
      return WireErrorCode.INTERNAL_ERROR;
  }
}

/** The error a stream sees when its peer refuses its OPEN with `code` and `reason`. */
export function errorFromRefusal(code: number, reason: string): MuxError {
  const suffix = reason ? `: ${reason}` : '';
  switch (code) {
    case WireErrorCode.STREAM_LIMIT:
      return new MuxError('ERR_STREAM_LIMIT', `peer refused the stream: too many open streams${suffix}`);
    case WireErrorCode.META_TOO_LARGE:
      return new MuxError('ERR_META_TOO_LARGE', `peer refused the stream: meta too large${suffix}`);
    case WireErrorCode.GOING_AWAY:
      return new MuxError('ERR_GOING_AWAY', `peer refused the stream: it is going away${suffix}`);
    case WireErrorCode.OPEN_TIMEOUT:
      return new MuxError('ERR_OPEN_TIMEOUT', `peer refused the stream: not accepted in time${suffix}`);
    case WireErrorCode.OVERLOADED:
      return new MuxError('ERR_OVERLOADED', `peer refused the stream: it is overloaded${suffix}`);
    default:
      return new MuxError('ERR_STREAM_REFUSED', `peer refused the stream${suffix || ` (code ${code})`}`, {
        wireCode: WireErrorCode.REFUSED,
      });
  }
}

/** The error a stream sees when its peer resets it with `code` and `reason`. */
export function errorFromReset(code: number, reason: string): MuxError {
  const name = WireErrorCode[code] ?? `code ${code}`;
  return new MuxError('ERR_STREAM_RESET', `stream reset by peer (${name})${reason ? `: ${reason}` : ''}`, {
    wireCode: WireErrorCode.CANCEL,
  });
}

/** The error a connection sees when its peer goes away with a non-normal `code`. */
export function errorFromGoAway(code: number, reason: string): MuxError {
  const suffix = reason ? `: ${reason}` : '';
  switch (code) {
    case WireErrorCode.AUTH_FAILED:
      return new MuxError('ERR_AUTH_FAILED', `server rejected the connection${suffix || ': authentication failed'}`);
    case WireErrorCode.KEEPALIVE_TIMEOUT:
      return new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer closed the connection: keepalive timeout${suffix}`);
    case WireErrorCode.IDLE_TIMEOUT:
      return new MuxError('ERR_IDLE_TIMEOUT', `peer closed the idle connection${suffix}`);
    case WireErrorCode.OVERLOADED:
      return new MuxError('ERR_OVERLOADED', `peer closed the connection: it is overloaded${suffix}`);
    case WireErrorCode.ENHANCE_YOUR_CALM:
      return new MuxError('ERR_RATE_LIMIT', `peer closed the connection: too much work without data from this side${suffix}`);
    default: {
      const name = WireErrorCode[code] ?? `code ${code}`;
      return new MuxError('ERR_CONNECTION_CLOSED', `peer closed the connection (${name})${suffix}`);
    }
  }
}
