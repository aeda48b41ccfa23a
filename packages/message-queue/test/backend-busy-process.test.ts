import { busyFor, type EchoProcess, startEchoProcess } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExchangeRequest, type ExchangeResponse, MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

// A worker whose process was busy (a long synchronous task, a GC pause) past `backendTimeoutMs`
// while its backend's answer waited in a socket: the backend answered in time, so the worker must
// not report an outage. Node runs due timers before it reads sockets, so a watchdog that judged
// at its timer saw the answered call as unanswered (a false `error` event, backend_up 0, a warn).
// The answer here comes through a pipe from a child process (@noa/testkit's echo process), as a
// server's reply does; the provider is memory otherwise.

class PipedProvider extends MemoryProvider {
  busyOnNextExchangeMs = 0;
  constructor(readonly echo: EchoProcess) {
    super();
  }
  override async exchange(queueName: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    // Resumed by I/O (the pipe's answer), as a call chained on a server's reply is.
    await this.echo.request('x');
    const busyMs = this.busyOnNextExchangeMs;
    if (busyMs > 0) {
      this.busyOnNextExchangeMs = 0;
      const reply = this.echo.request('y');
      // The request is written; its answer arrives while this process is busy.
      busyFor(busyMs);
      await reply;
    }
    return super.exchange(queueName, request);
  }
}

describe('a worker busy past backendTimeoutMs while its backend answered', () => {
  let echo: EchoProcess;
  beforeAll(async () => {
    echo = await startEchoProcess();
  });
  afterAll(() => echo.close());

  it('reports no outage: the answer waiting in the pipe is read before the watchdog judges', async () => {
    const provider = new PipedProvider(echo);
    const queue = new Queue<{ n: number }>({ name: 'busy-process', provider });
    const errors: Error[] = [];
    const done: number[] = [];
    const worker = new Worker<{ n: number }>({
      queue,
      backendTimeoutMs: 200,
      pollIntervalMs: 50,
      handler: (job) => {
        done.push(job.data.n);
      },
    });
    worker.on('error', (error: Error) => errors.push(error));
    try {
      await queue.add('job', { n: 1 });
      await waitFor(() => done.includes(1));
      expect(worker.backendState).toBe('up');
      provider.busyOnNextExchangeMs = 600;
      await queue.add('job', { n: 2 });
      await waitFor(() => done.includes(2) && provider.busyOnNextExchangeMs === 0);
      // A few watchdog periods after the busy spell.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(errors).toEqual([]);
      expect(worker.backendState).toBe('up');
    } finally {
      await worker.close();
      await queue.close();
      await provider.close();
    }
  });
});
