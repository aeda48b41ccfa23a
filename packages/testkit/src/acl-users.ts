/**
 * The Redis ACL users the packages' "Production Redis" tests run as, the way managed Redis
 * confines an application: `confined` (its key prefix and channels only), `no-dangerous` (the
 * same without `@dangerous`: no KEYS, CONFIG, FLUSHALL, INFO…) and `minimal` (only the commands
 * a package's README lists, scripts' commands included: ACLs apply inside scripts).
 */
export type RestrictedAclUser = 'confined' | 'no-dangerous' | 'minimal';

/**
 * The `ACL SETUSER` rules (password `secret`) of each {@link RestrictedAclUser} for keys under
 * `prefix`; `minimalCommands` is the README's space-separated list (`+get +set …`). `channels`
 * (default true) grants the channels under `prefix` too; a package that publishes nothing leaves
 * them out, as its README's line does.
 */
export function restrictedAclUsers(
  prefix: string,
  minimalCommands: string,
  { channels = true }: { channels?: boolean } = {},
): Record<RestrictedAclUser, string[]> {
  const scope = [
    'on',
    '>secret',
    'resetkeys',
    `~${prefix}*`,
    'resetchannels',
    ...(channels ? [`&${prefix}*`] : []),
  ];
  return {
    confined: [...scope, '+@all'],
    'no-dangerous': [...scope, '+@all', '-@dangerous'],
    minimal: [...scope, '-@all', ...minimalCommands.split(' ')],
  };
}

/** What `ACL LOG` holds (as ioredis returns it): the object of each refusal, newest first. */
export function aclRefusedObjects(log: unknown): string[] {
  return (log as string[][]).map((entry) => entry[entry.indexOf('object') + 1] ?? '');
}
