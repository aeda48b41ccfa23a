/**
 * Checks of connection strings at construction, without connecting: a typo in a URL is a
 * configuration mistake (`ConfigError` naming the field), not an outage for every query to
 * discover. Each check accepts what its driver's own parser accepts; no message quotes the
 * string, which may carry a password.
 */

/** Why `url` is not a URL the WHATWG parser (every driver's, save Mongo's host list) reads. */
function urlProblem(url: string, base?: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    return 'not a valid URL (check the brackets, port and the escaping of the user and password)';
  }
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    return 'the user or password in the URL has a bad %-escape';
  }
  return undefined;
}

/**
 * pg (pg-connection-string): a socket path (`/dir dbname`), else a URL relative to
 * `postgres://base`, whose host may be empty (`postgres://u@/db?host=/dir`).
 */
export function pgConnectionStringProblem(value: string): string | undefined {
  if (value.startsWith('/')) return undefined;
  // As pg-connection-string does: spaces and lone `%` are escaped before parsing.
  const escaped = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(value)
    ? encodeURI(value).replace(/%25(\d\d)/g, '%$1')
    : value;
  return urlProblem(escaped.replace('@/', '@localhost/'), 'postgres://base');
}

/** mysql2 reads a connection string with `new URL()` (anything else fails on connect) and decodes its database too. */
export function mysqlConnectionStringProblem(value: string): string | undefined {
  const problem = urlProblem(value);
  if (problem !== undefined) return problem;
  try {
    decodeURIComponent(new URL(value).pathname);
  } catch {
    return 'the database name in the URL has a bad %-escape';
  }
  return undefined;
}

/** ioredis: a `redis://`/`rediss://` URL must parse; `host:port` and socket paths are its own forms. */
export function redisConnectionStringProblem(value: string): string | undefined {
  return /^rediss?:\/\//i.test(value) ? urlProblem(value) : undefined;
}

const mongoUrlParts = /^(mongodb(?:\+srv)?:\/\/)(?:([^@/]*)@)?([^/?]*)(.*)$/i;

/**
 * mongodb (mongodb-connection-string-url): a comma-separated host list, each host and the rest
 * (user, database, options) as in a URL.
 */
export function mongoConnectionStringProblem(value: string): string | undefined {
  const parts = mongoUrlParts.exec(value);
  if (parts === null) return 'not a mongodb:// or mongodb+srv:// connection string';
  const [, scheme, userinfo, hosts, rest] = parts;
  const auth = userinfo === undefined ? '' : `${userinfo}@`;
  const hostList = hosts!.split(',');
  if (hostList.some((host) => host === '')) return 'an empty host in the host list';
  for (const host of hostList) {
    const problem = urlProblem(`mongodb://${host}`);
    if (problem !== undefined) return `a bad host in the host list (${problem})`;
  }
  return urlProblem(`${scheme}${auth}placeholder${rest}`);
}
