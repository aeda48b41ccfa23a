import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipKey } from '../src/index.js';

/** An IPv6 address as 8 groups, written in full (`0:0:…`), compressed (`::`) or uppercase. */
const groupsArb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
const full = (groups: number[]) => groups.map((group) => group.toString(16)).join(':');
/** Node's canonical form: the longest run of zero groups compressed. */
const canonical = (groups: number[]) => new URL(`http://[${full(groups)}]/`).hostname.slice(1, -1);

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
});
