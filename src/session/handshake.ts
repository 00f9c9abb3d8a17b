/**
 * The start of a connection (PROTOCOL.md, section 2): the magic and HELLO each side writes,
 * the peer's HELLO, the server's `authenticate` verdict on the client, and the handshake's
 * deadline. It owns what happens before the connection is ready, so the session's frame
 * handling only ever sees a ready connection or this class.
 *
 * Until both HELLOs are exchanged the write scheduler is idle: the few frames of the
 * handshake (each behind the magic) go straight to the transport, counted here.
 */

import type { Duplex } from 'node:stream';
import type { SessionLimits } from '../config';
import { decodeCodeAndReason, encodeFrame, encodeGoAway } from '../codec/encode';
import { errorFromGoAway, MuxError } from '../errors';
import { FrameType, MAGIC, PROTOCOL_VERSION, WireErrorCode } from '../protocol/constants';
import { encodeSettings, parseSettings, type PeerSettings } from '../protocol/hello';
import type { ClientInfo, ConnectionOptions, Role, SessionState } from './types';
import { debug as log } from '../debug';

/** What {@link Handshake} needs from its connection. */
export interface HandshakeHost {
  readonly state: SessionState;
  readonly transportSocket: Duplex | null;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The peer's HELLO arrived: its settings apply from now on. */
  helloReceived(settings: Readonly<PeerSettings>): void;
  /** Stop reading frames while `authenticate` decides about the client. */
  holdFrames(): void;
  /** Read again, starting with the frames the client sent behind its HELLO. */
  releaseFrames(): void;
  /** Both HELLOs are exchanged: the connection is ready. */
  becomeReady(): void;
  /** End the connection because of `err` (the peer was told, if at all, already). */
  destroyWith(err: MuxError): void;
}

/** One connection's handshake, from `start()` until the connection is ready or closed. */
export class Handshake {
  private timer: NodeJS.Timeout | null = null;
  /** Frames and bytes written straight to the transport (each the magic and one frame). */
  framesOut = 0;
  bytesOut = 0;

  constructor(
    private readonly host: HandshakeHost,
    private readonly role: Role,
    private readonly limits: SessionLimits,
    private readonly options: Pick<ConnectionOptions, 'hello' | 'authenticate'>,
  ) {}

  /** The transport is attached: the deadline starts, and a client speaks first. */
  start(): void {
    this.timer = setTimeout(onTimeout, this.limits.handshakeTimeout, this);
    this.timer.unref();
    if (this.role === 'client') this.writeHello();
  }

  /** The handshake is over, done or abandoned: its deadline no longer applies. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A frame from the peer before the connection is ready: it must be the HELLO. */
  onFrame(type: FrameType, payload: Buffer): void {
    if (type === FrameType.HELLO) return this.onHello(payload);
    if (type === FrameType.GO_AWAY && this.role === 'client') {
      const { code, reason } = decodeCodeAndReason(payload);
      throw errorFromGoAway(code, reason);
    }
    throw new MuxError('ERR_HANDSHAKE_FAILED', `expected HELLO as the first frame, got ${FrameType[type]}`);
  }

  /**
   * A protocol error ends the handshake: a server tells the client why (behind the magic, as
   * the client expects it), unless the client never spoke the protocol at all.
   */
  explainFailure(error: MuxError, retiredVersion: number | null = null): void {
    if (this.role !== 'server') return;
    if (error.code === 'ERR_HANDSHAKE_FAILED' && error.message.startsWith('peer is not')) return;
    if (retiredVersion !== null) {
      // Framed in the client's own version, so an older release reads why instead of a bare mismatch.
      const reason = `this server speaks protocol version ${PROTOCOL_VERSION}; version ${retiredVersion} is no longer supported: upgrade tcp-stream-muxer`;
      this.writeFirst(encodeGoAway(WireErrorCode.PROTOCOL_ERROR, reason, retiredVersion));
      return;
    }
    this.writeFirst(encodeGoAway(error.wireCode, error.message));
  }

  /** @internal The deadline passed. */
  expire(): void {
    this.host.destroyWith(new MuxError('ERR_HANDSHAKE_TIMEOUT', `handshake not completed within ${this.limits.handshakeTimeout} ms`));
  }

  private onHello(payload: Buffer): void {
    const settings = parseSettings(payload);
    this.host.helloReceived(settings);
    if (this.role === 'client') {
      this.finish();
      return;
    }
    const authenticate = this.options.authenticate;
    if (!authenticate) {
      this.acceptClient();
      return;
    }
    this.host.holdFrames();
    const info: ClientInfo = { remoteAddress: this.host.remoteAddress, remotePort: this.host.remotePort };
    new Promise((resolve) => resolve(authenticate(settings.hello, info))).then(
      (verdict) => {
        if (this.host.state !== 'handshake') return;
        if (verdict) this.acceptClient();
        else this.rejectClient('authentication failed');
      },
      (err: unknown) => {
        if (this.host.state !== 'handshake') return;
        this.rejectClient(err instanceof Error ? err.message : 'authentication failed');
      },
    );
  }

  private acceptClient(): void {
    this.writeHello();
    this.finish();
    // Frames the client sent behind its HELLO are decoded now, outside any socket callback.
    this.host.releaseFrames();
  }

  private rejectClient(reason: string): void {
    if (log.enabled) log('%s rejected the client: %s', this.role, reason);
    this.writeFirst(encodeGoAway(WireErrorCode.AUTH_FAILED, reason));
    this.host.destroyWith(new MuxError('ERR_AUTH_FAILED', `client rejected: ${reason}`));
  }

  private finish(): void {
    this.stop();
    this.host.becomeReady();
  }

  private writeHello(): void {
    const hello = this.role === 'client' ? (this.options.hello ?? null) : null;
    // Limits shared by a server's connections (frozen) always give the same bytes: made once.
    const shared = hello === null && Object.isFrozen(this.limits);
    const cached = shared ? helloBytes.get(this.limits) : undefined;
    if (cached !== undefined) return this.writeBytes(cached);
    const settings: PeerSettings = {
      initialWindow: this.limits.initialWindow,
      connectionWindow: this.limits.connectionWindow,
      maxFrameSize: this.limits.maxFrameSize,
      maxStreams: this.limits.maxStreams,
      maxMetaBytes: this.limits.maxMetaBytes,
      hello,
    };
    const bytes = Buffer.concat([MAGIC, encodeFrame(FrameType.HELLO, 0, 0, encodeSettings(settings))]);
    if (shared) helloBytes.set(this.limits, bytes);
    this.writeBytes(bytes);
  }

  /** Writes the magic and `frame`: this side's first (and, for a GO_AWAY, last) write. */
  private writeFirst(frame: Buffer): void {
    this.writeBytes(Buffer.concat([MAGIC, frame]));
  }

  private writeBytes(bytes: Buffer): void {
    const t = this.host.transportSocket;
    if (!t || t.destroyed || t.writableEnded) return;
    this.bytesOut += bytes.length;
    this.framesOut++;
    t.write(bytes);
  }
}

/** The magic and HELLO of each shared (frozen) limits object: the same for every connection of a server. */
const helloBytes = new WeakMap<SessionLimits, Buffer>();

function onTimeout(handshake: Handshake): void {
  handshake.expire();
}
