import { tracingChannel } from '@noa/core';

/**
 * Lifecycle events on `node:diagnostics_channel`, named `noa:message_queue:<event>`. Each
 * message is `{ queue, jobId, name, ... }`; publishing costs nothing without subscribers.
 */
export const jobEvents = {
  added: tracingChannel('message_queue', 'added'),
  active: tracingChannel('message_queue', 'active'),
  completed: tracingChannel('message_queue', 'completed'),
  failed: tracingChannel('message_queue', 'failed'),
  retried: tracingChannel('message_queue', 'retried'),
  deadLettered: tracingChannel('message_queue', 'dead-lettered'),
  stalled: tracingChannel('message_queue', 'stalled'),
  progress: tracingChannel('message_queue', 'progress'),
} as const;

/** The name of a lifecycle event. */
export type JobEventName = keyof typeof jobEvents;

/** Publishes `message` on the event's channel when someone listens. */
export function publishJobEvent(event: JobEventName, message: Record<string, unknown>): void {
  const channel = jobEvents[event];
  if (channel.hasSubscribers) channel.publish(message);
}
