import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, ipKey } from '../src/index.js';
import { IpList } from '../src/ip-list.js';

/** An IPv6 address as 8 groups, written in full (`0:0:…`), compressed (`::`) or uppercase. */
const groupsArb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
const full = (groups: number[]) => groups.map((group) => group.toString(16)).join(':');
/** Node's canonical form: the longest run of zero groups compressed. */
const canonical = (groups: number[]) => new URL(`http://[${full(groups)}]/`).hostname.slice(1, -1);
/** `::ffff:a.b.c.d`: an IPv4 client as a dual-stack socket or a proxy reports it. */
const ipv4Mapped = (groups: number[]) =>
  groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;

describe('ipKey', () => {
  it('keeps IPv4 addresses whole, and maps IPv4-mapped IPv6 to them', () => {
    expect(ipKey('203.0.113.7')).toBe('203.0.113.7');
    expect(ipKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(ipKey('203.0.113.7', false)).toBe('203.0.113.7');
  });

  it('keys IPv6 by its /56 by default, or by the given prefix, or whole with false', () => {
    expect(ipKey('2001:db8:1:2ff::10')).toBe('2001:db8:1:200::/56');
    expect(ipKey('2001:DB8:1:2::99', 64)).toBe('2001:db8:1:2::/64');
    expect(ipKey('2001:DB8:0::1', false)).toBe('2001:db8::1');
    expect(ipKey('fe80::1%eth0', 64)).toBe('fe80::/64');
  });

  it('gives one key to exactly the addresses of one subnet', () => {
    fc.assert(
      fc.property(groupsArb, groupsArb, fc.integer({ min: 1, max: 128 }), (a, b, prefix) => {
        // IPv4 clients are keyed by their IPv4 address (below), not by an IPv6 subnet.
        fc.pre(!ipv4Mapped(a) && !ipv4Mapped(b));
        const subnet = new BlockList();
        const [network] = ipKey(full(a), prefix).split('/');
        subnet.addSubnet(network!, prefix, 'ipv6');
        // The key is the subnet that holds the address, whichever way it is written.
        expect(subnet.check(canonical(a), 'ipv6')).toBe(true);
        expect(ipKey(canonical(a), prefix)).toBe(ipKey(full(a), prefix));
        expect(ipKey(full(b), prefix) === ipKey(full(a), prefix)).toBe(subnet.check(canonical(b), 'ipv6'));
      }),
    );
  });

  it('leaves what is not an IP address as it is', () => {
    expect(ipKey('unknown')).toBe('unknown');
  });

  it('keys an IPv4-mapped address by its IPv4 however it is written (not every IPv4 client in one ::/56)', () => {
    for (const spelling of [
      '::FFFF:203.0.113.7',
      '0:0:0:0:0:ffff:203.0.113.7',
      '::ffff:cb00:7107',
      '::ffff:203.0.113.7%eth0',
    ]) {
      expect(ipKey(spelling)).toBe('203.0.113.7');
      expect(ipKey(spelling, false)).toBe('203.0.113.7');
    }
    fc.assert(
      fc.property(fc.ipV4(), (address) => {
        const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
        expect(ipKey(full([0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d]))).toBe(address);
      }),
    );
  });

  it('drops the source port some proxies append to X-Forwarded-For (one quota per client, not per connection)', () => {
    // Azure Application Gateway writes `ip:port`; Express then reports it as `req.ip`.
    expect(ipKey('203.0.113.7:51234')).toBe('203.0.113.7');
    expect(ipKey('[2001:db8:1:2ff::10]:443')).toBe('2001:db8:1:200::/56');
    expect(ipKey('[2001:db8::1]', false)).toBe('2001:db8::1');
    expect(ipKey('[::ffff:203.0.113.7]:8080')).toBe('203.0.113.7');
    // Not an address with a port: left alone.
    expect(ipKey('unknown:80')).toBe('unknown:80');
  });
});

describe('allow and deny lists', () => {
  it('match an address that carries a source port, so a port does not escape the deny list', async () => {
    const list = new IpList(['203.0.113.0/24', '2001:db8:bad::/48']);
    expect(list.has('203.0.113.7:51234')).toBe(true);
    expect(list.has('[2001:db8:bad::1]:443')).toBe(true);
    expect(list.has('198.51.100.1:51234')).toBe(false);
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 1_000 }], deny: ['203.0.113.66'] });
    expect((await limiter.check({ key: 'k', ip: '203.0.113.66:40000' })).outcome).toBe('denied');
    await limiter.close();
  });

  it('match every spelling of an IPv4-mapped address against IPv4 entries (and the reverse)', () => {
    const list = new IpList(['203.0.113.0/24']);
    for (const spelling of [
      '::ffff:203.0.113.7',
      '::FFFF:203.0.113.7',
      '0:0:0:0:0:ffff:203.0.113.7',
      '::ffff:cb00:7107',
    ])
      expect(list.has(spelling)).toBe(true);
    expect(new IpList(['::ffff:203.0.113.0/120']).has('203.0.113.7')).toBe(true);
  });
});
