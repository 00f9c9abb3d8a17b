/**
 * Typed events for the library's emitters. Each class names its events in a map from event
 * name to the listener's arguments (`{ stream: [stream: MuxStream] }`), and `on`, `once`,
 * `off`, `emit`, ... check listeners and arguments against it. An event name the map does not
 * know still compiles, with loosely typed arguments, as on a plain `EventEmitter`.
 *
 * The methods are declared on an interface merged into an empty subclass: an interface that
 * extends `EventEmitter` cannot change the signatures it inherits, but one merged into a class
 * replaces them. `MuxStream` declares its own the same way (stream.ts): over a generic map,
 * TypeScript cannot check them against the overloads `Duplex` already has.
 */
import { EventEmitter } from 'node:events';

/** An event map: each event's name and the arguments its listeners receive. */
export type EventMap<Events> = { [E in keyof Events]: unknown[] };

/**
 * A function type whose parameters are compared both ways (a method's rule, as Node's own
 * typings have it): `resolve` of a `Promise<void>` fits a listener of no arguments.
 */
export type BivariantListener<Args extends unknown[]> = {
  /** The listener. */
  listener(...args: Args): void;
}['listener'];

/** A listener for an event no map declares: any arguments, as on a plain `EventEmitter`. */
export type UndeclaredListener = BivariantListener<unknown[]>;

/**
 * The listener type for event `E`: the map's arguments when it knows `E` (a listener may
 * declare more parameters, which receive `undefined`), any arguments otherwise.
 */
export type ListenerOf<Events, E> = E extends keyof Events
  ? Events[E] extends unknown[]
    ? BivariantListener<[...Events[E], ...unknown[]]>
    : never
  : UndeclaredListener;

/** The arguments of event `E`: from the map when it knows `E`, any values otherwise. */
export type ArgumentsOf<Events, E> = E extends keyof Events ? (Events[E] extends unknown[] ? Events[E] : never) : unknown[];

/** An `EventEmitter` whose events are typed by the map `Events`; nothing more at run time. */
export interface TypedEventEmitter<Events extends EventMap<Events>> {
  /** Adds `listener` for `event` (the class's event map gives each event's arguments). */
  on<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** Adds `listener` for the next `event` only. */
  once<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** The same as `on`. */
  addListener<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** Adds `listener` before the listeners already there. */
  prependListener<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** Adds `listener` for the next `event` only, before the listeners already there. */
  prependOnceListener<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** Removes `listener`. */
  off<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** The same as `off`. */
  removeListener<E extends string | symbol>(event: E, listener: ListenerOf<Events, E>): this;
  /** Calls the listeners of `event` with `args`; true if it had any. */
  emit<E extends string | symbol>(event: E, ...args: ArgumentsOf<Events, E>): boolean;
}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the merge is the point (see above)
export class TypedEventEmitter<Events extends EventMap<Events>> extends EventEmitter {}
