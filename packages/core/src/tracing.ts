import * as diagnosticsChannel from 'node:diagnostics_channel';

/**
 * Returns the `node:diagnostics_channel` channel `noa:<package>:<event>`. Publishing to a
 * channel with no subscribers costs a property check, so packages publish unconditionally
 * behind `channel.hasSubscribers`.
 */
export function tracingChannel(packageName: string, event: string): diagnosticsChannel.Channel {
  return diagnosticsChannel.channel(`noa:${packageName}:${event}`);
}
