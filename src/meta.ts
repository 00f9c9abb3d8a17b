/**
 * The types of `meta` and `hello`: JSON values, and what an application may name as the shape
 * of its metas. Types only; the wire rules (I-JSON, depth, size) are checked in
 * protocol/json.ts.
 */

/** A JSON value: what `meta` and `hello` may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * `T` with every part that JSON cannot carry (functions, `bigint`, `symbol`, class instances'
 * methods) turned into `never`, so a meta holding one does not compile. Unlike `JsonValue`,
 * it accepts interfaces (`interface UpdateMeta { type: 'update'; file: string }`), which
 * TypeScript never lets match an index signature, and optional fields (JSON leaves them out).
 */
export type JsonCompatible<T> = T extends JsonValue
  ? T
  : T extends (...args: never[]) => unknown
    ? never
    : T extends readonly unknown[]
      ? { [K in keyof T]: JsonCompatible<T[K]> }
      : T extends object
        ? { [K in keyof T]: K extends string ? JsonCompatible<T[K]> : never }
        : never;

/** The `meta` argument of `createStream<M>`: `M` itself, checked to be JSON. */
export type MetaArgument<M> = M & ([M] extends [JsonValue] ? unknown : JsonCompatible<M>);
