/** What JSON drops: an object field of one of these types is left out (`undefined`, functions, symbols). */
type Dropped = undefined | symbol | ((...args: never[]) => unknown);

/** The keys of `T` whose values JSON keeps for sure (required) or may drop (`T[K]` includes `undefined`). */
type KeptKeys<T> = {
  [K in keyof T]-?: [T[K]] extends [Dropped] ? never : undefined extends T[K] ? never : K;
}[keyof T];
type MaybeKeys<T> = {
  [K in keyof T]-?: [T[K]] extends [Dropped] ? never : undefined extends T[K] ? K : never;
}[keyof T];

/**
 * `T` as it comes back from `JSON.parse(JSON.stringify(value))`, which is how payloads travel on
 * every provider: a `Date` (anything with `toJSON`) becomes what `toJSON` returns (a string), a
 * field that may be `undefined` becomes optional, functions and symbols are left out, `undefined`
 * in an array becomes `null`. `unknown` and `any` stay as they are. (As tRPC and hono type their
 * JSON responses.)
 */
export type Jsonified<T> = unknown extends T
  ? T
  : T extends { toJSON(...args: never[]): infer R }
    ? Jsonified<R>
    : T extends string | number | boolean | null
      ? T
      : T extends bigint | Dropped
        ? never
        : T extends readonly unknown[]
          ? { -readonly [I in keyof T]: T[I] extends Dropped ? null : Jsonified<T[I]> }
          : T extends object
            ? Simplify<
                { [K in KeptKeys<T>]: Jsonified<T[K]> } & {
                  [K in MaybeKeys<T>]?: Jsonified<Exclude<T[K], undefined>>;
                }
              >
            : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
