import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createNamespace,
  escapeGlob,
  namespaceFor,
  quoteIdentifier,
  quoteMysqlIdentifier,
  uniqueName,
  withDatabasePath,
  withSearchPath,
  withVhostPath,
} from '../src/index.js';

const identifier = /^[a-z][a-z0-9_]{0,62}$/;

describe('uniqueName', () => {
  it('is a valid identifier of at most 63 chars for any prefix', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (prefix) => {
        expect(uniqueName(prefix)).toMatch(identifier);
      }),
    );
  });

  it('keeps a clean prefix readable and differs on every call', () => {
    const names = new Set(Array.from({ length: 1_000 }, () => uniqueName('Rate-Limiter')));
    expect(names.size).toBe(1_000);
    for (const name of names) expect(name.startsWith('rate_limiter_')).toBe(true);
    expect(uniqueName('9lives')).toMatch(/^t9lives_/);
  });
});

describe('createNamespace', () => {
  it('derives every backend name from one unique name', () => {
    const ns = createNamespace('cache');
    expect(ns.name).toMatch(/^cache_/);
    expect(ns).toEqual({
      name: ns.name,
      keyPrefix: `${ns.name}:`,
      schema: ns.name,
      database: ns.name,
      vhost: ns.name,
      queuePrefix: `${ns.name}.`,
      topicPrefix: `${ns.name}.`,
    });
  });

  it('yields names each backend accepts', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), (prefix) => {
        const ns = createNamespace(prefix);
        expect(ns.schema).toMatch(identifier); // PostgreSQL: 63 bytes, unquoted
        expect(ns.database.length).toBeLessThanOrEqual(64); // MariaDB
        expect(ns.topicPrefix).toMatch(/^[a-zA-Z0-9._-]{1,200}$/); // Kafka: [a-zA-Z0-9._-], 249 max
        expect(`${ns.queuePrefix}q`.length).toBeLessThanOrEqual(80); // SQS
        expect(ns.vhost).not.toContain('/');
      }),
    );
  });

  it('namespaceFor rejects names that are not identifiers', () => {
    expect(() => namespaceFor('Bad Name')).toThrow(/namespace name/);
    expect(() => namespaceFor('1abc')).toThrow(/namespace name/);
    expect(namespaceFor('ok_1').keyPrefix).toBe('ok_1:');
  });
});

describe('URL rewriting for namespaces', () => {
  it('withSearchPath sets the libpq options parameter', () => {
    const url = withSearchPath('postgres://noa:noa@127.0.0.1:5432/noa?application_name=x', 's_1');
    const parsed = new URL(url);
    expect(parsed.searchParams.get('options')).toBe('-c search_path=s_1');
    expect(parsed.searchParams.get('application_name')).toBe('x');
    expect(parsed.pathname).toBe('/noa');
  });

  it('withDatabasePath replaces the database and keeps credentials', () => {
    expect(withDatabasePath('mysql://noa:noa@127.0.0.1:3306/noa', 'd_1')).toBe(
      'mysql://noa:noa@127.0.0.1:3306/d_1',
    );
  });

  it('withVhostPath encodes the vhost as the AMQP path', () => {
    expect(withVhostPath('amqp://guest:guest@127.0.0.1:5672', 'v_1')).toBe(
      'amqp://guest:guest@127.0.0.1:5672/v_1',
    );
    expect(withVhostPath('amqp://guest:guest@127.0.0.1:5672/', 'a/b')).toBe(
      'amqp://guest:guest@127.0.0.1:5672/a%2Fb',
    );
  });

  it('quotes identifiers', () => {
    expect(quoteIdentifier('a"b')).toBe('"a""b"');
    expect(quoteMysqlIdentifier('a`b')).toBe('`a``b`');
  });

  it('escapeGlob makes SCAN MATCH literal', () => {
    expect(escapeGlob('a*b?c[d]e\\f:')).toBe('a\\*b\\?c\\[d\\]e\\\\f:');
    fc.assert(
      fc.property(fc.string(), (text) => {
        // Unescaped, every metacharacter is preceded by a backslash.
        expect(escapeGlob(text).replace(/\\[*?[\]\\]/g, '')).not.toMatch(/[*?[\]\\]/);
      }),
    );
  });
});
