/**
 * `user:password@` in a URL. The userinfo ends at the authority's last `@` (as WHATWG URLs and
 * pg parse it), so a raw `@` in the password (`app:p@ss@db`) or the user name (`app@server:pw@db`)
 * is masked with it, not left half shown.
 */
const urlPassword = /(\/\/[^:/?#\s]*):[^/?#\s]*@/g;

/** Option keys whose values are secrets, whatever the driver calls them. */
const secretKey = /pass(word|wd|phrase)?$|secret|token|credential|^key$|^auth$/i;

/** `value` with any password in a URL masked (`postgres://app:***@db/app`). */
export function maskUrlPassword(value: string): string {
  return value.replace(urlPassword, '$1:***@');
}

/**
 * A copy of options fit to print or serialize: URL passwords masked, secret fields (`password`,
 * `sslkey`…) replaced by `***`, and objects that are not plain data (a registry, a logger, a
 * TLS context) by their class name, so that the copy has no cycles either.
 */
export function redactOptions(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return maskUrlPassword(value);
  if (typeof value === 'function') return `[function ${value.name || 'anonymous'}]`;
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 6) return '[…]';
  if (Array.isArray(value)) return value.map((each) => redactOptions(each, depth + 1));
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    return `[${(value as object).constructor?.name ?? 'object'}]`;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    copy[key] = field !== undefined && secretKey.test(key) ? '***' : redactOptions(field, depth + 1);
  }
  return copy;
}
