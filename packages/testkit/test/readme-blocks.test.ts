import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { documentationFiles, readmeBlocks } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function packageWith(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'noa-readme-blocks-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const block = (code: string, tag = '') => `<!-- test${tag ? `:${tag}` : ''} -->\n\`\`\`ts\n${code}\n\`\`\`\n`;

describe('readmeBlocks', () => {
  it('reads README.md alone when the package has no docs/', () => {
    const dir = packageWith({ 'README.md': `# x\n\n${block('one()')}\n\`\`\`ts\nunmarked()\n\`\`\`\n` });
    expect(documentationFiles(dir)).toEqual(['README.md']);
    expect(readmeBlocks(dir)).toEqual([{ tag: undefined, code: 'one()\n', line: 3, file: 'README.md' }]);
    expect(readmeBlocks(dir, { all: true }).map((found) => found.code)).toEqual(['one()\n', 'unmarked()\n']);
  });

  it('then the guides under docs/ in name order, each block naming its file and line', () => {
    const dir = packageWith({
      'README.md': block('readme()'),
      'docs/b-guide.md': `# b\n\ntext\n\n${block('b()', 'redis')}`,
      'docs/a-guide.md': block('a()'),
      'docs/notes.txt': block('ignored()'),
    });
    expect(documentationFiles(dir)).toEqual(['README.md', 'docs/a-guide.md', 'docs/b-guide.md']);
    expect(readmeBlocks(dir)).toEqual([
      { tag: undefined, code: 'readme()\n', line: 1, file: 'README.md' },
      { tag: undefined, code: 'a()\n', line: 1, file: 'docs/a-guide.md' },
      { tag: 'redis', code: 'b()\n', line: 5, file: 'docs/b-guide.md' },
    ]);
  });
});
