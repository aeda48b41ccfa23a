import type { CacheEntry } from '../entry.js';
import { SerializationError } from '../errors.js';
import { type CompressionName, compress, compressionCode, decompress } from './compression.js';
import { jsonSerializer, msgpackSerializer, type ValueSerializer } from './value-serializer.js';

const FORMAT_VERSION = 1;
const serializerCode = { msgpack: 0, json: 1 } as const;

/**
 * Encodes entries for L2: one header byte (version 4 bits, serializer 1 bit, compression 3
 * bits) then the serialized `[value, createdAt, expiresAt, staleUntil, computeMs, tags]`,
 * compressed when it is at least `thresholdBytes` long and compression actually helps.
 * Any instance decodes any header, whatever its own settings.
 */
export class EntryCodec {
  readonly #serializer: ValueSerializer;
  readonly #compression: CompressionName;
  readonly #thresholdBytes: number;
  readonly #decoders: Record<number, ValueSerializer>;

  constructor(serializer: 'msgpack' | 'json', compression: CompressionName, thresholdBytes: number) {
    const msgpack = msgpackSerializer();
    const json = jsonSerializer();
    this.#serializer = serializer === 'json' ? json : msgpack;
    this.#decoders = { 0: msgpack, 1: json };
    this.#compression = compression;
    this.#thresholdBytes = thresholdBytes;
  }

  /** Encodes an entry; throws {@link SerializationError} when the value cannot be encoded. */
  encode(entry: CacheEntry): Buffer {
    // The serializer leaves the first byte free for the header: no copy of the body just to
    // prefix one byte.
    let out: Buffer;
    try {
      out = this.#serializer.encode(
        [
          entry.value,
          entry.createdAt,
          finiteOr(entry.expiresAt),
          finiteOr(entry.staleUntil),
          entry.computeMs,
          entry.tags,
        ],
        1,
      );
    } catch (error) {
      throw new SerializationError('encode', { cause: error });
    }
    let compression: CompressionName = 'none';
    if (this.#compression !== 'none' && out.length - 1 >= this.#thresholdBytes) {
      const packed = compress(this.#compression, out.subarray(1));
      if (packed.length < out.length - 1) {
        out = Buffer.allocUnsafe(packed.length + 1);
        packed.copy(out, 1);
        compression = this.#compression;
      }
    }
    out[0] =
      (FORMAT_VERSION << 4) | (serializerCode[this.#serializer.name] << 3) | compressionCode[compression];
    return out;
  }

  /** Decodes bytes written by any instance; throws {@link SerializationError} on bad data. */
  decode(bytes: Buffer): CacheEntry {
    try {
      const header = bytes[0] ?? 0;
      if (header >> 4 !== FORMAT_VERSION) throw new Error(`unknown format version ${header >> 4}`);
      const serializer = this.#decoders[(header >> 3) & 1]!;
      const compression = header & 0b111;
      const decoded =
        compression === 0
          ? serializer.decode(bytes, 1)
          : serializer.decode(decompress(compression, bytes.subarray(1)), 0);
      const [value, createdAt, expiresAt, staleUntil, computeMs, tags] = decoded as [
        unknown,
        number,
        number,
        number,
        number,
        string[],
      ];
      return {
        value,
        createdAt,
        expiresAt: infinityOr(expiresAt),
        staleUntil: infinityOr(staleUntil),
        computeMs,
        tags: tags ?? [],
      };
    } catch (error) {
      throw new SerializationError('decode', { cause: error });
    }
  }
}

function finiteOr(value: number): number {
  return Number.isFinite(value) ? value : -1;
}

function infinityOr(value: number): number {
  return value === -1 ? Number.POSITIVE_INFINITY : value;
}
