import { execFileSync } from 'node:child_process';

/**
 * Whether a `redis-server` binary is on PATH (private servers and clusters need one); prints
 * `skipped: no redis-server binary for <purpose>` when it is not.
 */
export function redisServerInstalled(purpose: string): boolean {
  try {
    execFileSync('redis-server', ['--version']);
    return true;
  } catch {
    console.log(`skipped: no redis-server binary for ${purpose}`);
    return false;
  }
}
