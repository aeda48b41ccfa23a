import { z } from 'zod';
import type { ConfigIssue } from './errors.js';

/** A zod issue as parsed with `reportInput: true`: it may carry the value it is about. */
type Issue = z.core.$ZodIssue & { input?: unknown };

/** Fields whose values are never echoed, only their type: credentials, and URLs (which may hold one). */
const secretField = /pass|secret|token|cred|auth|cookie|session|private|signature|url|dsn|uri$|key$/i;
/** The longest string echoed in a message; a longer one is described by its length only. */
const maxEchoedChars = 40;
/** The most literal values listed in one message. */
const maxListedValues = 12;

/**
 * Turns zod issues into one {@link ConfigIssue} per bad field, with a message a user can act on.
 * Where zod's own message is its default (no schema gave one), it is rewritten: "Invalid input"
 * of a union says what its branches take, of a `z.custom` what it got; a missing value is
 * "required". A schema's own message is kept; one that says what the field takes gets what was
 * given: `'an ioredis Redis instance'` becomes `expected an ioredis Redis instance, got 5`,
 * `'must be a function'` becomes `must be a function, got 5`. Values are echoed only when short
 * and neither of a secret-looking field (password, token, key, url…) nor URL-like.
 */
export function describeIssues(
  issues: readonly Issue[],
  input: unknown,
  base: readonly PropertyKey[] = [],
): ConfigIssue[] {
  return issues.flatMap((issue) => {
    const path = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => ({ path: dotted([...path, key]), message: 'unknown option' }));
    if (issue.code === 'invalid_union' && isDefault(issue)) {
      const deep = deepestBranch(issue.errors) ?? checkedBranch(issue.errors);
      if (deep) return describeIssues(deep, input, path);
    }
    // A refine of an object (with `path`) or a superRefine's issue carries the whole object as
    // its input: what the user gave is the value at the issue's path.
    const seen = issue.code === 'custom' ? withFieldValue(issue, input, path) : issue;
    return [{ path: dotted(path), message: describe(seen, path) }];
  });
}

/** `issue` with `input` set to the value at `path` in `root`, or without `input` if there is none. */
function withFieldValue(issue: Issue, root: unknown, path: readonly PropertyKey[]): Issue {
  const { input: _, ...rest } = issue;
  let value = root;
  try {
    for (const [index, segment] of path.entries()) {
      if (typeof value !== 'object' || value === null) return rest as Issue;
      if (index < path.length - 1 && !(segment in value)) return rest as Issue;
      value = (value as Record<PropertyKey, unknown>)[segment];
    }
  } catch {
    return rest as Issue; // a throwing getter or proxy: say nothing of the value
  }
  return { ...rest, input: value } as Issue;
}

function describe(issue: Issue, path: readonly PropertyKey[]): string {
  if (!isDefault(issue)) {
    if (!('input' in issue)) return issue.message;
    // A schema's own message that names what it takes: add what it got.
    if (/^(a|an|one of)\s/.test(issue.message)) return expectation(issue.message, issue, path);
    if (!/^(expected|must be|should be)\s/i.test(issue.message)) return issue.message;
    return issue.input === undefined
      ? `required (${issue.message})`
      : `${issue.message}, got ${received(issue.input, path)}`;
  }
  switch (issue.code) {
    case 'invalid_type':
      return expectation(typePhrase(issue.expected), issue, path);
    case 'invalid_value':
      return expectation(alternatives(issue.values.map(literalPhrase)), issue, path);
    case 'invalid_union': {
      if ('discriminator' in issue && typeof issue.discriminator === 'string') {
        // A discriminated union whose tag matched no option: zod reports it at the tag's path.
        const options = (issue as { options?: unknown[] }).options ?? [];
        const tag = isObject(issue.input) ? { input: issue.input[issue.discriminator] } : {};
        return expectation(alternatives(options.map(literalPhrase)), tag, path);
      }
      if (issue.errors.length === 0) {
        // An exclusive union (z.xor) whose input passed more than one branch.
        const { matches } = issue as { matches?: unknown[] };
        return matches
          ? `matches ${matches.length} of its alternatives, expected exactly one`
          : issue.message;
      }
      const phrases = issue.errors.flatMap((branch) => typeIssues(branch).flatMap(branchPhrases));
      return expectation(alternatives(phrases), issue, path);
    }
    case 'custom':
      if (!('input' in issue)) return issue.message;
      return issue.input === undefined ? 'required' : `invalid value, got ${received(issue.input, path)}`;
    default:
      // Bounds and formats: zod's words say what is taken; add what was given.
      if (!('input' in issue) || issue.input === undefined) return issue.message;
      return `${issue.message}, got ${received(issue.input, path)}`;
  }
}

/** `expected <what>, got <input>`, or `required (expected <what>)` when the value is missing. */
function expectation(what: string, issue: { input?: unknown }, path: readonly PropertyKey[]): string {
  if (!('input' in issue)) return `expected ${what}`;
  if (issue.input === undefined) return `required (expected ${what})`;
  return `expected ${what}, got ${received(issue.input, path)}`;
}

/** Whether zod wrote the message itself (its locale's text), rather than a schema's own. */
function isDefault(issue: Issue): boolean {
  if (issue.message === 'Invalid input') return true;
  const fromLocale = z.config().localeError?.(issue as never);
  const text = typeof fromLocale === 'string' ? fromLocale : fromLocale?.message;
  return issue.message === text;
}

/**
 * The issues of a failed union's branch that got past the top level (the input was of its type, a
 * field within was wrong), which say what the user got wrong better than a list of the branches'
 * types. Of several, a branch whose literal fields (tags such as `kind: 'redis'`) matched, then the
 * one whose issue lies deepest, then the one with fewest issues, then the first. When each such
 * branch failed on a tag at one place, that tag with every branch's values.
 */
function deepestBranch(branches: readonly (readonly Issue[])[]): readonly Issue[] | undefined {
  const depth = (branch: readonly Issue[]) => Math.max(0, ...branch.map((issue) => issue.path.length));
  const tagOf = (branch: readonly Issue[]) =>
    branch.find((issue) => issue.code === 'invalid_value' && issue.path.length > 0);
  const deep = branches.filter((branch) => depth(branch) > 0);
  if (deep.length === 0) return undefined;
  const matched = deep.filter((branch) => tagOf(branch) === undefined);
  if (matched.length === 0) {
    const tags = deep.map(tagOf) as Extract<Issue, { code: 'invalid_value' }>[];
    const [first] = tags;
    if (first && tags.every((tag) => dotted(tag.path) === dotted(first.path)))
      return [{ ...first, values: tags.flatMap((tag) => tag.values), message: 'Invalid input' }];
  }
  const candidates = matched.length > 0 ? matched : deep;
  return candidates.reduce((best, branch) =>
    (depth(branch) - depth(best) || best.length - branch.length) > 0 ? branch : best,
  );
}

/** Issues that say the input is not of a branch's type (not a bound or check it then failed). */
const typeCodes = new Set(['invalid_type', 'invalid_value', 'invalid_union']);

/**
 * What a union branch says it takes: its type issues when it has any (zod 4 also runs a
 * branch's checks on input of another type, e.g. an array's `max` on a string's length, which
 * say nothing of what the branch takes), else all of them.
 */
function typeIssues(branch: readonly Issue[]): readonly Issue[] {
  const types = branch.filter((issue) => issue.path.length === 0 && typeCodes.has(issue.code));
  return types.length > 0 ? types : branch;
}

/** Issues of a value of the right type that fails a bound or format (a `max`, an email). */
const boundCodes = new Set(['too_big', 'too_small', 'not_multiple_of', 'invalid_format']);

/**
 * The issues of a failed union's branch whose type the input had but whose bounds or format it
 * failed at the top level (an array longer than its `max`): what the user got wrong, rather than
 * the bound's message listed as one of the union's alternatives. (A `z.custom`'s issue is its
 * type check: such a branch is an alternative.)
 */
function checkedBranch(branches: readonly (readonly Issue[])[]): readonly Issue[] | undefined {
  return branches.find((branch) => branch.length > 0 && branch.every((issue) => boundCodes.has(issue.code)));
}

interface Phrase {
  text: string;
  /** A literal value (`'ip'`, `false`), listed with the others as "one of …". */
  literal: boolean;
}

/** What one top-level issue of a union branch says the branch takes. */
function branchPhrases(issue: Issue): Phrase[] {
  if (!isDefault(issue))
    return [{ text: issue.code === 'custom' ? nounPhrase(issue.message) : issue.message, literal: false }];
  switch (issue.code) {
    case 'invalid_type':
      return [{ text: typePhrase(issue.expected), literal: false }];
    case 'invalid_value':
      return issue.values.map(literalPhrase);
    case 'invalid_union':
      return issue.errors.flatMap((branch) => typeIssues(branch).flatMap(branchPhrases));
    case 'custom':
      return [{ text: 'a value its check accepts', literal: false }];
    default:
      return [{ text: issue.message, literal: false }];
  }
}

function literalPhrase(value: unknown): Phrase {
  return { text: literal(value), literal: true };
}

/**
 * `one of 'a', 'b', a number or a function`: the literals as one list, where the first of them
 * stood among the branches, each other phrase once.
 */
function alternatives(phrases: readonly Phrase[]): string {
  const literals = [...new Set(phrases.filter((phrase) => phrase.literal).map((phrase) => phrase.text))];
  const listed = literals.length > maxListedValues ? [...literals.slice(0, maxListedValues), '…'] : literals;
  const parts: string[] = [];
  for (const phrase of phrases) {
    if (!phrase.literal) parts.push(phrase.text);
    else if (phrase.text === literals[0])
      parts.push(listed.length > 1 ? `one of ${listed.join(', ')}` : phrase.text);
  }
  const unique = [...new Set(parts)];
  if (unique.length <= 1) return unique[0] ?? 'another value';
  return `${unique.slice(0, -1).join(', ')} or ${unique.at(-1)}`;
}

/**
 * A custom message as one of a union's alternatives: `'a function'`, `'one of …'` as is,
 * `'expected a Queue'`, `'must be a function'` without their verb.
 */
function nounPhrase(message: string): string {
  return message.replace(/^(expected|must be|should be)\s+/i, '');
}

const typePhrases: Record<string, string> = {
  array: 'an array',
  int: 'an integer',
  nan: 'NaN',
  never: 'no value',
  nonoptional: 'a value',
  null: 'null',
  object: 'an object',
  record: 'an object',
  tuple: 'an array',
  undefined: 'undefined',
  void: 'undefined',
  date: 'a Date',
  map: 'a Map',
  set: 'a Set',
  file: 'a File',
};

/** zod's `expected` type as a phrase: `a string`, `an array`, `a Map` (for `z.instanceof(Map)`). */
function typePhrase(expected: string): string {
  return typePhrases[expected] ?? `${/^[aeiou]/i.test(expected) ? 'an' : 'a'} ${expected}`;
}

/** A literal value as written in code: `'ip'`, `false`, `5n`, `null`. */
function literal(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

/** What the user gave, safe to log: short primitives as written, anything else by its type. */
function received(value: unknown, path: readonly PropertyKey[]): string {
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  const field = path.findLast((segment) => typeof segment === 'string');
  if (typeof field === 'string' && secretField.test(field)) return typeName(value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') {
    // URLs and `user:password@host` may carry credentials.
    if (value.includes('://') || /[^\s:@/]+:[^\s@/]*@/.test(value)) return 'a URL-like string';
    if (value.length > maxEchoedChars) return `a string of ${value.length} characters`;
    return quote(value);
  }
  return typeName(value);
}

function typeName(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value !== 'object' || value === null) return typePhrase(typeof value);
  try {
    if (Array.isArray(value)) return 'an array';
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype === null || prototype === Object.prototype) return 'an object';
    const name: unknown = (prototype as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === 'string' && name !== '') return `an instance of ${name.slice(0, maxEchoedChars)}`;
  } catch {
    // A proxy that refuses to be looked at (a revoked one, a throwing trap).
  }
  return 'an object';
}

/** `'text'` with control characters and quotes escaped, so the message stays one line. */
function quote(text: string): string {
  return `'${JSON.stringify(text).slice(1, -1).replaceAll("'", "\\'")}'`;
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

function isObject(value: unknown): value is Record<PropertyKey, unknown> {
  return typeof value === 'object' && value !== null;
}
