import { MuxError } from '../errors';
import { MAX_STREAM_ID } from '../protocol/constants';
import type { Role } from './session';
import type { MuxStream } from './stream';

/**
 * A connection's open streams by id, and the id rules of PROTOCOL.md: clients open odd ids,
 * servers even ones, each side counting up and never reusing an id. Because ids only grow,
 * "was this id ever opened?" needs no memory of closed streams.
 */
export class StreamTable {
  // Made with the first stream: an idle connection holds no empty Map (~180 bytes with its table).
  private streams: Map<number, MuxStream> | null = null;
  private readonly localParity: number;
  private nextLocalId: number;
  private highestRemoteId = 0;
  /** Open streams this side opened, and that the peer opened. */
  localOpen = 0;
  remoteOpen = 0;

  /** A stream was ever added. */
  began = false;

  /** @param link told of every stream added, and which is the first (what only a link with streams needs starts then). */
  constructor(
    role: Role,
    private readonly link: { streamAdded(first: boolean): void },
  ) {
    this.localParity = role === 'client' ? 1 : 0;
    this.nextLocalId = role === 'client' ? 1 : 2;
  }

  get size(): number {
    return this.streams === null ? 0 : this.streams.size;
  }

  get(id: number): MuxStream | undefined {
    return this.streams === null ? undefined : this.streams.get(id);
  }

  values(): MuxStream[] {
    return this.streams === null ? [] : [...this.streams.values()];
  }

  isLocalId(id: number): boolean {
    return (id & 1) === this.localParity;
  }

  /** True for any id that was opened on this connection, open or since closed. */
  wasOpened(id: number): boolean {
    return this.isLocalId(id) ? id < this.nextLocalId : id <= this.highestRemoteId;
  }

  /**
   * The open stream that a frame from the peer (`frame` names its type) is for; undefined if
   * that stream has closed since. Throws `ERR_PROTOCOL` for an id that was never opened.
   */
  lookup(id: number, frame: string): MuxStream | undefined {
    const stream = this.get(id);
    if (stream === undefined && !this.wasOpened(id)) {
      throw new MuxError('ERR_PROTOCOL', `${frame} for stream ${id}, which was never opened`);
    }
    return stream;
  }

  /** As {@link lookup}, for an answer to this side's OPEN (ACCEPT, REFUSE): the id must be ours. */
  lookupLocal(id: number, frame: string): MuxStream | undefined {
    if (!this.isLocalId(id)) throw new MuxError('ERR_PROTOCOL', `${frame} for stream ${id}, which the peer opened itself`);
    return this.lookup(id, frame);
  }

  /** The id for the next stream this side opens, or null once the 31-bit space is used up. */
  peekLocalId(): number | null {
    return this.nextLocalId > MAX_STREAM_ID ? null : this.nextLocalId;
  }

  /** Registers a stream this side opens with {@link peekLocalId}'s id. */
  addLocal(stream: MuxStream): void {
    this.nextLocalId += 2;
    (this.streams ??= new Map()).set(stream.id, stream);
    this.localOpen++;
    this.tellLink();
  }

  /** Checks that the peer may open `id` now; throws `ERR_PROTOCOL` if not. */
  claimRemoteId(id: number): void {
    if (this.isLocalId(id)) throw new MuxError('ERR_PROTOCOL', `peer opened stream ${id}, an id from this side's space`);
    if (id <= this.highestRemoteId) {
      throw new MuxError('ERR_PROTOCOL', `peer reused or went back to stream id ${id} (last was ${this.highestRemoteId})`);
    }
    this.highestRemoteId = id;
  }

  addRemote(stream: MuxStream): void {
    (this.streams ??= new Map()).set(stream.id, stream);
    this.remoteOpen++;
    this.tellLink();
  }

  private tellLink(): void {
    const first = !this.began;
    this.began = true;
    this.link.streamAdded(first);
  }

  /** Removes `stream` if it is the one registered under its id; true if it was. */
  remove(stream: MuxStream): boolean {
    if (this.streams === null || this.streams.get(stream.id) !== stream) return false;
    this.streams.delete(stream.id);
    if (this.isLocalId(stream.id)) this.localOpen--;
    else this.remoteOpen--;
    return true;
  }

  /** Empties the table and returns what it held. */
  clear(): MuxStream[] {
    const streams = this.values();
    this.streams = null;
    this.localOpen = this.remoteOpen = 0;
    return streams;
  }
}
