import { InvalidPayloadError, Queue, type QueueProvider, Worker } from '@noa/message-queue';
import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import { z } from 'zod';

const emailSchema = z.object({ to: z.email(), subject: z.string().min(1) });

/** The payload of an email job. */
export type EmailJob = z.infer<typeof emailSchema>;

/**
 * Enqueue, inspect and count email jobs; a worker "sends" them in the background. On a shared
 * provider (RabbitMQ with its state in Redis) every instance's worker takes jobs from the same
 * queue, and any instance can read a job's state.
 */
export function mountJobRoutes(
  app: Express,
  provider: QueueProvider,
  options: { queueName: string; registry?: Registry },
): { emails: Queue<EmailJob>; worker: Worker<EmailJob> } {
  const { queueName, registry } = options;
  const emails = new Queue({ name: queueName, provider, schema: emailSchema, registry });
  const worker = new Worker({
    queue: emails,
    concurrency: 5,
    registry,
    handler: async (job) => {
      await job.progress(50);
      return { sentTo: job.data.to, at: Date.now() };
    },
  });
  // Without a listener an 'error' event (the backend unreachable while fetching) would crash
  // the process; the worker retries by itself.
  worker.on('error', (error) => console.warn(`email worker: ${error.message}`));
  app.post('/api/jobs/email', express.json(), async (req, res, next) => {
    try {
      const { id, added } = await emails.add('welcome', req.body, {
        attempts: 3,
        jobId: req.get('idempotency-key'),
      });
      res.status(added ? 202 : 200).json({ id, added });
    } catch (error) {
      if (error instanceof InvalidPayloadError)
        res.status(400).json({ code: error.code, fields: error.fields });
      else next(error);
    }
  });
  app.get('/api/jobs/email/:id', async (req, res, next) => {
    try {
      const job = await emails.getJob(req.params.id);
      if (!job) {
        res.sendStatus(404);
        return;
      }
      res.json({ state: job.state, progress: job.progress, result: job.result, errors: job.errors });
    } catch (error) {
      next(error);
    }
  });
  app.get('/api/jobs/email', async (_req, res, next) => {
    try {
      res.json(await emails.counts());
    } catch (error) {
      next(error);
    }
  });
  return { emails, worker };
}
