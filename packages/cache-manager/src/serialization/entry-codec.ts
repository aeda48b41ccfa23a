import { RESERVE_START_SPACE } from 'msgpackr';
import type { CacheEntry } from '../entry.js';
import { SerializationError } from '../errors.js';
import {
  type CompressionName,
  compress,
  compressionCode,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
  type DecompressLimit,
  decompress,
} from './compression.js';
import type { SharedStructures } from './shared-structures.js';
import { jsonSerializer, msgpackSerializer, type ValueSerializer } from './value-serializer.js';

/** Format 1: self-contained values (msgpack records described inline, or JSON). */
const INLINE_FORMAT = 1;
/**
 * Format 2: msgpack with shared structures, identified by epoch and count only. No longer
 * decoded (a miss): a value on a Cluster master could outlive the list's loss and be read with
 * another shape at its ids (see {@link SharedStructures}). Format 4 replaced it.
 */
const UNVERIFIED_SHARED_FORMAT = 2;
/** Format 4: msgpack whose record structures are shared, checked by fingerprint. */
const SHARED_FORMAT = 4;
/**
 * Bytes before the body in format 4: header, epoch (uint32 BE), structures used (uint8), their
 * fingerprint (64 bits BE, see {@link SharedStructures.decoderFor}).
 */
const SHARED_HEADER_BYTES = 14;
const serializerCode = { msgpack: 0, json: 1 } as const;
/**
 * Format 3: a sliding entry. A frame of its timings (big-endian doubles: expiresAt,
 * staleUntil, bound (-1 for none) and window) in front of the entry encoded in format 1 or 4. At fixed offsets, so that `get-sliding.lua` can move them on an L2 hit
 * without decoding the value; the frame's timings win over the body's.
 */
const SLIDING_FRAME = 3;
const FRAME_BYTES = 33;

/**
 * Encodes entries for L2: one header byte (format version 4 bits, serializer 1 bit,
 * compression 3 bits), then in format 4 the shared structures' epoch (4 bytes), how many of
 * them the body may use (1 byte) and their fingerprint (8 bytes), then the serialized `[value, createdAt, expiresAt,
 * staleUntil, computeMs, tags, writeId]` (`writeId` when the entry has one: a seventh field,
 * which the releases before it, reading the first six, ignore), compressed when it is at least `thresholdBytes` long and
 * compression actually helps. Any instance decodes any header, whatever its own settings;
 * format 4 needs the shared structures (see {@link EntryCodec.prepare}); format 2 (its
 * predecessor, unverifiable) is a miss.
 * Without `structures` (or with JSON) it writes format 1, as the first release did. A sliding
 * entry is that encoding inside a format-3 frame of its timings (see `SLIDING_FRAME`).
 */
export class EntryCodec {
  readonly #serializer: ValueSerializer;
  readonly #compression: CompressionName;
  readonly #thresholdBytes: number;
  readonly #decoders: Record<number, ValueSerializer>;
  readonly #structures: SharedStructures | undefined;
  readonly #writeShared: boolean;
  /** One object for every decompression (no allocation per read). */
  readonly #decompressLimit: DecompressLimit;

  /**
   * `structures` lets this codec read format 4; it also writes it when `writeShared` (default
   * true) and the serializer is msgpack. A compressed value that would decompress to more than
   * `maxDecompressedBytes` is undecodable (a miss), and this codec never compresses a body
   * larger than that (it is stored uncompressed, so that readers with the same bound read it).
   */
  constructor(
    serializer: 'msgpack' | 'json',
    compression: CompressionName,
    thresholdBytes: number,
    structures?: SharedStructures,
    writeShared = true,
    maxDecompressedBytes = DEFAULT_MAX_DECOMPRESSED_BYTES,
  ) {
    const msgpack = msgpackSerializer();
    const json = jsonSerializer();
    this.#serializer = serializer === 'json' ? json : msgpack;
    this.#decoders = { 0: msgpack, 1: json };
    this.#compression = compression;
    this.#thresholdBytes = thresholdBytes;
    this.#structures = structures;
    this.#writeShared = writeShared && serializer === 'msgpack' && structures !== undefined;
    this.#decompressLimit = { maxOutputLength: maxDecompressedBytes };
  }

  /**
   * Undefined when `bytes` can be decoded now (the common case: no allocation); else a promise
   * that re-reads the shared structures they need (see `SharedStructures.loadFor`), after
   * which {@link decode} succeeds, or throws when the store no longer has them (a miss).
   */
  prepare(framed: Buffer): Promise<void> | undefined {
    const bytes = framed[0]! >> 4 === SLIDING_FRAME ? framed.subarray(FRAME_BYTES) : framed;
    const structures = this.#structures;
    if (structures === undefined || bytes.length < SHARED_HEADER_BYTES || bytes[0]! >> 4 !== SHARED_FORMAT)
      return undefined;
    const needed = bytes[5]!;
    const high = bytes.readUInt32BE(6);
    const low = bytes.readUInt32BE(10);
    if (structures.decoderFor(high, low, needed)) return undefined;
    return structures.loadFor(bytes.readUInt32BE(1), needed, high, low);
  }

  /**
   * Encodes an entry; throws {@link SerializationError} when the value cannot be encoded, with
   * `key` (when given) in its details so that a refused `set` says which value it was.
   */
  encode(entry: CacheEntry, key?: string): Buffer {
    const body = [
      entry.value,
      entry.createdAt,
      finiteOr(entry.expiresAt),
      finiteOr(entry.staleUntil),
      entry.computeMs,
      entry.tags,
    ];
    if (entry.writeId !== undefined) body.push(entry.writeId);
    const structures = this.#structures;
    const shared = this.#writeShared ? structures?.encoder : undefined;
    // The serializer leaves the header bytes free: no copy of the body just to prefix them.
    const headerBytes = shared ? SHARED_HEADER_BYTES : 1;
    let out: Buffer;
    try {
      out = shared ? shared.pack(body, RESERVE_START_SPACE | headerBytes) : this.#serializer.encode(body, 1);
    } catch (error) {
      throw new SerializationError('encode', { cause: error, details: key === undefined ? {} : { key } });
    }
    let compression: CompressionName = 'none';
    const bodyBytes = out.length - headerBytes;
    if (
      this.#compression !== 'none' &&
      bodyBytes >= this.#thresholdBytes &&
      bodyBytes <= this.#decompressLimit.maxOutputLength
    ) {
      const packed = compress(this.#compression, out.subarray(headerBytes));
      if (packed.length < out.length - headerBytes) {
        out = Buffer.allocUnsafe(packed.length + headerBytes);
        packed.copy(out, headerBytes);
        compression = this.#compression;
      }
    }
    const version = shared ? SHARED_FORMAT : INLINE_FORMAT;
    out[0] = (version << 4) | (serializerCode[this.#serializer.name] << 3) | compressionCode[compression];
    if (shared) {
      out.writeUInt32BE(structures!.epoch!, 1);
      out[5] = structures!.length;
      out.writeUInt32BE(structures!.fingerprintHigh, 6);
      out.writeUInt32BE(structures!.fingerprintLow, 10);
    }
    return entry.slidingMs ? frame(entry, out) : out;
  }

  /** Decodes bytes written by any instance; throws {@link SerializationError} on bad data. */
  decode(bytes: Buffer): CacheEntry {
    if (bytes[0]! >> 4 !== SLIDING_FRAME) return this.#decodeBody(bytes);
    if (bytes.length <= FRAME_BYTES)
      throw new SerializationError('decode', { cause: new Error('short frame') });
    const entry = this.#decodeBody(bytes.subarray(FRAME_BYTES));
    entry.expiresAt = bytes.readDoubleBE(1);
    entry.staleUntil = bytes.readDoubleBE(9);
    entry.maxExpiresAt = infinityOr(bytes.readDoubleBE(17));
    entry.slidingMs = bytes.readDoubleBE(25);
    return entry;
  }

  #decodeBody(bytes: Buffer): CacheEntry {
    try {
      const header = bytes[0] ?? 0;
      const version = header >> 4;
      const compression = header & 0b111;
      let decoded: unknown;
      if (version === INLINE_FORMAT) {
        const serializer = this.#decoders[(header >> 3) & 1]!;
        decoded =
          compression === 0
            ? serializer.decode(bytes, 1)
            : serializer.decode(decompress(compression, bytes.subarray(1), this.#decompressLimit), 0);
      } else if (version === SHARED_FORMAT && bytes.length > SHARED_HEADER_BYTES) {
        const decoder = this.#structures?.decoderFor(
          bytes.readUInt32BE(6),
          bytes.readUInt32BE(10),
          bytes[5]!,
        );
        if (!decoder) throw new Error('value written with shared structures this instance does not have');
        decoded =
          compression === 0
            ? decoder.unpack(bytes, { start: SHARED_HEADER_BYTES })
            : decoder.unpack(
                decompress(compression, bytes.subarray(SHARED_HEADER_BYTES), this.#decompressLimit),
              );
      } else if (version === UNVERIFIED_SHARED_FORMAT) {
        throw new Error('value written with shared structures and no fingerprint (format 2)');
      } else {
        throw new Error(`unknown format version ${version}`);
      }
      if (!isEntryBody(decoded)) throw new Error('the bytes do not hold a cache entry');
      const [value, createdAt, expiresAt, staleUntil, computeMs, tags, writeId] = decoded;
      return {
        value,
        createdAt,
        expiresAt: infinityOr(expiresAt),
        staleUntil: infinityOr(staleUntil),
        computeMs,
        tags: tags ?? [],
        slidingMs: undefined,
        maxExpiresAt: undefined,
        writeId: Number.isSafeInteger(writeId) ? (writeId as number) : undefined,
      };
    } catch (error) {
      throw new SerializationError('decode', { cause: error });
    }
  }
}

/**
 * The length of the frame of timings in front of `bytes` (format 3: a sliding entry), 0 for
 * any other format: the bytes that L2 reads of a sliding entry may change.
 */
export function slidingFrameBytes(bytes: Buffer): number {
  return bytes.length > FRAME_BYTES && bytes[0]! >> 4 === SLIDING_FRAME ? FRAME_BYTES : 0;
}

/**
 * True when `bytes` (any format) hold a compressed body: their length then says little about
 * the size of the decoded value (a repetitive string shrinks a thousandfold).
 */
export function isCompressed(bytes: Buffer): boolean {
  const header = bytes[slidingFrameBytes(bytes)] ?? 0;
  return (header & 0b111) !== 0;
}

/**
 * Whether a decoded body has the shape {@link EntryCodec.encode} writes. Bytes of another app
 * or corrupted ones can be valid msgpack or JSON of another shape: taken as an entry, a `tags`
 * that is not a list of strings threw from L1's tag index (a rejected `get`, not a miss).
 */
function isEntryBody(
  decoded: unknown,
): decoded is [unknown, number, number, number, number, string[] | undefined, unknown] {
  if (!Array.isArray(decoded) || decoded.length < 5) return false;
  for (let index = 1; index <= 4; index += 1) if (typeof decoded[index] !== 'number') return false;
  const tags: unknown = decoded[5];
  return tags === undefined || (Array.isArray(tags) && tags.every((tag) => typeof tag === 'string'));
}

/** The sliding frame (format 3) around an entry's encoding (see {@link SLIDING_FRAME}). */
function frame(entry: CacheEntry, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_BYTES + body.length);
  out[0] = SLIDING_FRAME << 4;
  out.writeDoubleBE(entry.expiresAt, 1);
  out.writeDoubleBE(entry.staleUntil, 9);
  out.writeDoubleBE(finiteOr(entry.maxExpiresAt ?? Number.POSITIVE_INFINITY), 17);
  out.writeDoubleBE(entry.slidingMs!, 25);
  body.copy(out, FRAME_BYTES);
  return out;
}

function finiteOr(value: number): number {
  return Number.isFinite(value) ? value : -1;
}

function infinityOr(value: number): number {
  return value === -1 ? Number.POSITIVE_INFINITY : value;
}
