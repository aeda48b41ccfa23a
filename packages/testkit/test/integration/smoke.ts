import { redactUrl } from '../../src/index.js';

export { requireService } from '../../src/index.js';

/** Prints the one line each smoke test leaves in the output. */
export function smokeLine(service: string, version: string, url: string): void {
  console.log(`[smoke] ${service} ${version} at ${redactUrl(url)} ok`);
}
