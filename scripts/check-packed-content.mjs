// What scripts/check-packed.mjs requires of a tarball's contents, apart so it can be tried on a
// listing of one's own.
import path from 'node:path';

/**
 * What is wrong with a tarball's file list (`listing`, `package/…` paths; `read(entry)` gives a
 * file's text): tests, benchmarks or sources shipped; no LICENSE or README; a source map that
 * points at sources the tarball does not carry: a .js.map must carry every source inline
 * (`sourcesContent`), a .d.ts.map (an editor's go-to-definition) must point at files that ship.
 */
export function tarballContentProblems(listing, read) {
  const problems = [];
  const stray = listing.filter(
    (entry) =>
      /^package\/(src|test|tests|bench|benchmarks?)\//.test(entry) ||
      /(^|\/)(__tests__|fixtures)\//.test(entry) ||
      /\.(test|spec|bench)\.[cm]?[jt]s(\.map)?$/.test(entry) ||
      /\.(test|spec|bench)\.d\.[cm]?ts(\.map)?$/.test(entry),
  );
  if (stray.length > 0) problems.push(`ships ${stray.slice(0, 3).join(', ')}`);
  if (!listing.includes('package/LICENSE')) problems.push('ships no LICENSE');
  if (!listing.includes('package/README.md')) problems.push('ships no README.md');
  const shipped = new Set(listing);
  for (const map of listing.filter((entry) => entry.endsWith('.map'))) {
    const { sources = [], sourcesContent, sourceRoot = '' } = JSON.parse(read(map));
    if (/\.d\.[cm]?ts\.map$/.test(map)) {
      const missing = sources
        .map((source) => path.posix.join(path.posix.dirname(map), sourceRoot, source))
        .filter((source) => !shipped.has(source));
      if (missing.length > 0)
        problems.push(`${map} points at ${missing.slice(0, 2).join(', ')}, not shipped`);
    } else if (
      !sourcesContent ||
      sourcesContent.length < sources.length ||
      sourcesContent.some((text) => text == null)
    ) {
      problems.push(`${map} points at sources it does not carry (no sourcesContent)`);
    }
  }
  return problems;
}
