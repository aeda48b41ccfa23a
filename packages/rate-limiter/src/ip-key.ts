import { isIP } from 'node:net';
import { ipv6Groups, mappedIpv4, normalizeAddress } from './ip-list.js';

/** The IPv6 prefix a client is keyed by unless told otherwise (express-rate-limit's default too). */
export const defaultIpv6Subnet = 56;

/** RFC 5952 text of 8 groups: lowercase, the first longest run of two or more zero groups as `::`. */
function formatIpv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; ) {
    let end = start;
    while (end < 8 && groups[end] === 0) end += 1;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end === start ? start + 1 : end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * The rate-limit key of a client address: an IPv4 address (or an IPv4-mapped IPv6 one, however
 * written) as itself, an IPv6 address as its `/ipv6Subnet` network (`2001:db8:1:200::/56`), because one
 * IPv6 client holds a whole /64 or more and could otherwise pick a fresh address per request.
 * `ipv6Subnet: false` keys each IPv6 address (in RFC 5952 form). A source port that a proxy appended
 * (`1.2.3.4:5678`, `[2001:db8::1]:443`) is dropped. Anything else is returned as it is. Use it
 * in a custom `keyBy` that falls back to the IP.
 */
export function ipKey(address: string, ipv6Subnet: number | false = defaultIpv6Subnet): string {
  // IPv4 is the common case and needs no parsing.
  if (!address.includes(':')) return address;
  const normalized = normalizeAddress(address);
  if (isIP(normalized.split('%')[0]!) !== 6) return normalized;
  const groups = ipv6Groups(normalized);
  // An IPv4 client however its mapped address is written (`::FFFF:…`, `0:0:0:0:0:ffff:…`, hex
  // groups): keyed by its IPv4, not by the `::/56` that every such client would share.
  const ipv4 = mappedIpv4(groups);
  if (ipv4 !== undefined) return ipv4;
  // Whole addresses too are written one way, so `2001:DB8:0::1` and `2001:db8::1` share a key.
  if (ipv6Subnet === false) return formatIpv6(groups);
  for (let index = 0; index < 8; index += 1) {
    const bits = Math.min(16, Math.max(0, ipv6Subnet - index * 16));
    groups[index] = groups[index]! & ((0xffff << (16 - bits)) & 0xffff);
  }
  return `${formatIpv6(groups)}/${ipv6Subnet}`;
}
