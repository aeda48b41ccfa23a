import { tracingChannel } from '@noa/core';

/**
 * Lifecycle events on `node:diagnostics_channel`, named `noa:message-queue:<event>` (as every @noa package: `noa:<package-name>:<event>`). Each
 * message is `{ queue, jobId, name, ... }`, except `stalled`'s, which is per maintenance pass or
 * give-back (`{ queue, recovered, deadLettered, removed }`); publishing costs nothing without subscribers.
 */
export const jobEvents = {
  added: tracingChannel('message-queue', 'added'),
  active: tracingChannel('message-queue', 'active'),
  completed: tracingChannel('message-queue', 'completed'),
  failed: tracingChannel('message-queue', 'failed'),
  retried: tracingChannel('message-queue', 'retried'),
  deadLettered: tracingChannel('message-queue', 'dead-lettered'),
  stalled: tracingChannel('message-queue', 'stalled'),
  progress: tracingChannel('message-queue', 'progress'),
} as const;

/** The name of a lifecycle event. */
export type JobEventName = keyof typeof jobEvents;

/** Publishes `message` on the event's channel when someone listens. */
export function publishJobEvent(event: JobEventName, message: Record<string, unknown>): void {
  const channel = jobEvents[event];
  if (channel.hasSubscribers) channel.publish(message);
}
