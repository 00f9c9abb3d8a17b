// Compile-time assertions for the type tests.

/** Compiles only when `value` is assignable to `T` (and `T` to the value's type, for literals). */
export function expectType<T>(value: T): T {
  return value;
}

/** True when `A` and `B` are the same type, by TypeScript's strictest comparison. */
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compiles only for `true`. */
export type Expect<T extends true> = T;
