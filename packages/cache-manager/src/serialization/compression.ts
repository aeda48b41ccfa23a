import zlib from 'node:zlib';

/** Compression algorithms for L2 values above the size threshold. */
export type CompressionName = 'none' | 'gzip' | 'brotli' | 'zstd';

/** Codes written in the header byte of every L2 value (stable: they are on disk). */
export const compressionCode: Record<CompressionName, number> = { none: 0, gzip: 1, brotli: 2, zstd: 3 };

type ZstdZlib = typeof zlib & {
  zstdCompressSync?: (buffer: Buffer) => Buffer;
  zstdDecompressSync?: (buffer: Buffer) => Buffer;
};
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

/** Inverse of {@link compress} by header code. */
export function decompress(code: number, input: Buffer): Buffer {
  switch (code) {
    case 0:
      return input;
    case 1:
      return zlib.gunzipSync(input);
    case 2:
      return zlib.brotliDecompressSync(input);
    case 3:
      if (!z.zstdDecompressSync) throw new Error('zstd value found but this Node has no zstd');
      return z.zstdDecompressSync(input);
    default:
      throw new Error(`unknown compression code ${code}`);
  }
}
