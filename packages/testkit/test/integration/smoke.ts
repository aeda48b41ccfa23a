import { ensureService, redactUrl, type ServiceName, serviceDefaults } from '../../src/index.js';

/**
 * The URL of a service CI always brings up. An unreachable one FAILS the smoke test instead
 * of skipping it: a silent skip would hide a broken `scripts/services`.
 */
export async function requireService(service: ServiceName, label: string): Promise<string> {
  const url = await ensureService(service);
  if (url) return url;
  throw new Error(
    `no ${label} at ${serviceDefaults[service].url}: CI starts it with scripts/services up (or set ${serviceDefaults[service].env})`,
  );
}

/** Prints the one line each smoke test leaves in the output. */
export function smokeLine(service: string, version: string, url: string): void {
  console.log(`[smoke] ${service} ${version} at ${redactUrl(url)} ok`);
}
