import { InvalidCheckInputError } from './errors.js';

/** What is being limited. */
export interface CheckInput {
  /** The caller's key (a non-empty string): a user id, an IP, an API key, `user:42:POST /orders`… */
  key: string;
  /** The client's IP address, for the allow/deny lists. */
  ip?: string | undefined;
  /** The caller's role, selecting `roles[role]` limits instead of the default ones. */
  role?: string | undefined;
  /** Points this request costs (default 1). */
  cost?: number | undefined;
}

/** The fields of a {@link CheckInput}: any other one is refused (a misspelt `cots`). */
const checkInputFields: ReadonlySet<string> = new Set(['key', 'ip', 'role', 'cost']);

const shown = (value: unknown): string =>
  typeof value === 'string' ? JSON.stringify(value) : value === null ? 'null' : typeof value;

/**
 * Throws {@link InvalidCheckInputError} unless `input` is a non-empty string or a
 * {@link CheckInput} with a non-empty string key (the cost is checked where it is read, as
 * `InvalidCostError`). JavaScript callers are the reason: `check({ key: req.user?.id })` would
 * otherwise put every anonymous caller on one quota.
 */
export function validateCheckInput(input: unknown, method: string): asserts input is CheckInput | string {
  if (typeof input === 'string') {
    if (input === '')
      throw new InvalidCheckInputError(method, 'key', 'key must be a non-empty string, got ""');
    return;
  }
  if (typeof input !== 'object' || input === null)
    throw new InvalidCheckInputError(
      method,
      'input',
      `input must be a key (a non-empty string) or an object { key, ip?, role?, cost? }, got ${shown(input)}`,
    );
  const { key, ip, role } = input as Record<string, unknown>;
  if (typeof key !== 'string' || key === '')
    throw new InvalidCheckInputError(method, 'key', `key must be a non-empty string, got ${shown(key)}`);
  if (ip !== undefined && typeof ip !== 'string')
    throw new InvalidCheckInputError(method, 'ip', `ip must be a string, got ${shown(ip)}`);
  if (role !== undefined && typeof role !== 'string')
    throw new InvalidCheckInputError(method, 'role', `role must be a string, got ${shown(role)}`);
  for (const field in input)
    if (!checkInputFields.has(field))
      throw new InvalidCheckInputError(
        method,
        field,
        `unknown field "${field}" (a check input has key, ip, role and cost)`,
      );
}

/**
 * `input` with `cost` given as a separate argument (`check(key, points)`, as rate-limiter-flexible's
 * `consume(key, points)` and our `refund(input, points)` take it) folded in: unchanged when `cost`
 * is undefined. A cost given twice (in the input and as the argument) is refused, since neither
 * reading is sure to be the caller's; inputs that are not checks are left for
 * {@link validateCheckInput} to refuse.
 */
export function withCost(input: unknown, cost: number | undefined, method: string): unknown {
  if (cost === undefined) return input;
  if (typeof input === 'string') return { key: input, cost };
  if (typeof input !== 'object' || input === null) return input;
  if ((input as CheckInput).cost !== undefined)
    throw new InvalidCheckInputError(
      method,
      'cost',
      'cost given twice: in the input and as the second argument; give it once',
    );
  return { ...input, cost };
}
