import zlib from 'node:zlib';

/** Compression algorithms for L2 values above the size threshold. */
export type CompressionName = 'none' | 'gzip' | 'brotli' | 'zstd';

/** Codes written in the header byte of every L2 value (stable: they are on disk). */
export const compressionCode: Record<CompressionName, number> = { none: 0, gzip: 1, brotli: 2, zstd: 3 };

type ZstdZlib = typeof zlib & {
  zstdCompressSync?: (buffer: Buffer) => Buffer;
  zstdDecompressSync?: (buffer: Buffer, options?: DecompressLimit) => Buffer;
};

/** zlib's bound on a decompressed buffer: past it, zlib throws instead of allocating more. */
export interface DecompressLimit {
  readonly maxOutputLength: number;
}

/**
 * Default bound on a value's decompressed size (64 MiB): far above what a cache entry should
 * be, far below what a compression bomb under the prefix could make a read allocate.
 */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;
const z = zlib as ZstdZlib;

/** True when this Node has zstd in node:zlib (Node ≥ 22.15 / 23.8). */
export const zstdAvailable = typeof z.zstdCompressSync === 'function';

/** The default algorithm: zstd where Node has it, else gzip. */
export const defaultCompression: CompressionName = zstdAvailable ? 'zstd' : 'gzip';

/**
 * Compresses synchronously at fast settings (gzip level 1–6 range default 3, brotli quality 4,
 * zstd level 3): L2 values are small and a cache must not spend more CPU than Redis saves.
 */
export function compress(name: CompressionName, input: Buffer): Buffer {
  switch (name) {
    case 'none':
      return input;
    case 'gzip':
      return zlib.gzipSync(input, { level: 3 });
    case 'brotli':
      return zlib.brotliCompressSync(input, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: 4,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: input.length,
        },
      });
    case 'zstd':
      if (!z.zstdCompressSync) throw new Error('zstd is not available in this Node version');
      return z.zstdCompressSync(input);
  }
}

/**
 * Inverse of {@link compress} by header code; throws (zlib's `ERR_BUFFER_TOO_LARGE`) rather than
 * produce more than `limit.maxOutputLength` bytes, so that bytes of any origin allocate a bounded
 * amount.
 */
export function decompress(code: number, input: Buffer, limit: DecompressLimit): Buffer {
  switch (code) {
    case 0:
      return input;
    case 1:
      return zlib.gunzipSync(input, limit);
    case 2:
      return zlib.brotliDecompressSync(input, limit);
    case 3:
      if (!z.zstdDecompressSync) throw new Error('zstd value found but this Node has no zstd');
      return z.zstdDecompressSync(input, limit);
    default:
      throw new Error(`unknown compression code ${code}`);
  }
}
