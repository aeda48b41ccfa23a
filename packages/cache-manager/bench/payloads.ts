import { seededRandom } from './random.js';

const first = ['Ada', 'Grace', 'Alan', 'Linus', 'Barbara', 'Ken', 'Dennis', 'Margaret', 'Edsger', 'Donald'];
const last = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Torvalds',
  'Liskov',
  'Thompson',
  'Ritchie',
  'Hamilton',
  'Dijkstra',
  'Knuth',
];
const cities = ['Paris', 'Berlin', 'Lagos', 'Lima', 'Osaka', 'Austin', 'Pune', 'Oslo'];

/** A realistic API record: ids, names, numbers, flags, a date, a nested object and a tag list. */
function record(random: () => number, index: number) {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  const name = `${pick(first)} ${pick(last)}`;
  return {
    id: 10_000 + index,
    uuid: `${Math.floor(random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0')}-${Math.floor(random() * 2 ** 16).toString(16)}`,
    name,
    email: `${name.toLowerCase().replace(' ', '.')}${index}@example.com`,
    active: random() > 0.3,
    score: Math.round(random() * 10_000) / 100,
    visits: Math.floor(random() * 5_000),
    createdAt: new Date(1_700_000_000_000 + Math.floor(random() * 1e10)).toISOString(),
    address: { city: pick(cities), zip: String(10_000 + Math.floor(random() * 89_999)) },
    tags: ['customer', random() > 0.5 ? 'premium' : 'standard'],
  };
}

/** A payload of about `bytes` bytes of JSON (a list of records, or one record when small). */
export function payload(bytes: number, seed = 42): unknown {
  const random = seededRandom(seed);
  const one = record(random, 0);
  if (bytes <= JSON.stringify(one).length) return one;
  const items = [];
  let size = 2;
  for (let index = 0; size < bytes; index += 1) {
    const item = record(random, index);
    size += JSON.stringify(item).length + 1;
    items.push(item);
  }
  return { page: 1, total: items.length, items };
}

/** The benchmark payloads by label. */
export const payloads = {
  small: payload(200),
  '10 KB': payload(10 * 1024),
  '100 KB': payload(100 * 1024),
} as const;
