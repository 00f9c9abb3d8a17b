/**
 * One timer for the keepalive of every connection that shares an interval, instead of one
 * `setInterval` per connection: each connection is put in one of the wheel's slots, chosen
 * at random, and the slots come round one after another, so the pings of ten thousand
 * connections are spread evenly over the interval instead of fired in the burst in which
 * the connections were made. An idle connection costs one array entry here, not a timer.
 */

import { KEEPALIVE_SLOT_MIN_MS, KEEPALIVE_SLOTS } from '../config';

/** A member of a wheel: what {@link KeepAliveWheel} calls once per interval. */
export interface WheelMember {
  /** The member's slot, or -1 when it is on no wheel. */
  wheelSlot: number;
  /** Its index within that slot. */
  wheelIndex: number;
  /** Its turn came round. */
  tick(): void;
}

const wheels = new Map<number, KeepAliveWheel>();

/** The wheel for `intervalMs`, made on first use. */
export function wheelFor(intervalMs: number): KeepAliveWheel {
  let wheel = wheels.get(intervalMs);
  if (wheel === undefined) {
    wheel = new KeepAliveWheel(intervalMs);
    wheels.set(intervalMs, wheel);
  }
  return wheel;
}

/** The connections of one keepalive interval, in slots visited in turn. */
export class KeepAliveWheel {
  private readonly slots: WheelMember[][];
  private cursor = 0;
  private members = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly intervalMs: number) {
    const count = Math.max(1, Math.min(KEEPALIVE_SLOTS, Math.floor(intervalMs / KEEPALIVE_SLOT_MIN_MS)));
    this.slots = Array.from({ length: count }, () => []);
  }

  /** Adds `member`; its first turn comes within one interval, at a random point of it. */
  add(member: WheelMember): void {
    if (member.wheelSlot !== -1) return;
    const slot = Math.floor(Math.random() * this.slots.length);
    const list = this.slots[slot];
    member.wheelSlot = slot;
    member.wheelIndex = list.length;
    list.push(member);
    if (this.members++ === 0) {
      this.timer = setInterval(onWheelTick, this.intervalMs / this.slots.length, this);
      this.timer.unref();
    }
  }

  /** Removes `member` (O(1): the slot's last member takes its place). */
  remove(member: WheelMember): void {
    if (member.wheelSlot === -1) return;
    const list = this.slots[member.wheelSlot];
    const last = list.pop()!;
    if (last !== member) {
      list[member.wheelIndex] = last;
      last.wheelIndex = member.wheelIndex;
    }
    member.wheelSlot = -1;
    if (--this.members === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** @internal The next slot's turn. */
  turn(): void {
    const slot = this.cursor;
    this.cursor = (slot + 1) % this.slots.length;
    const list = this.slots[slot];
    // A member's tick may remove it (or another) from this very slot: walk a copy when it is
    // not empty, so nobody is skipped or visited twice.
    if (list.length === 0) return;
    for (const member of list.slice()) if (member.wheelSlot === slot) member.tick();
  }
}

function onWheelTick(wheel: KeepAliveWheel): void {
  wheel.turn();
}
