import { afterEach, describe, expect, it } from 'vitest';
import { DriverNotInstalledError, Queue } from '../src/index.js';
import { amqplibImport } from '../src/providers/rabbitmq/amqplib-import.js';
import { RabbitMqProvider } from '../src/rabbitmq.js';

// amqplib is an optional peer dependency: `@noa/message-queue/rabbitmq` imports it on first use.
// It is not uninstalled here: its import is pointed at a package that does not exist, which
// fails as a missing install does (ERR_MODULE_NOT_FOUND). No broker is needed: nothing is sent.
const original = amqplibImport.load;
const missing = 'noa-test-not-installed-amqplib';

afterEach(() => {
  amqplibImport.load = original;
});

describe('RabbitMqProvider without amqplib installed', () => {
  it('rejects the first add with DriverNotInstalledError naming the install command, and again at the next', async () => {
    amqplibImport.load = () => import(/* @vite-ignore */ missing);
    const provider = new RabbitMqProvider({ url: 'amqp://guest:guest@127.0.0.1:1' });
    const queue = new Queue({ name: 'driver-missing', provider });
    try {
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const error = await queue.add('job', { n: attempt }).then(
          () => undefined,
          (failure: unknown) => failure as Error & { code?: string },
        );
        expect(error).toBeInstanceOf(DriverNotInstalledError);
        expect(error?.code).toBe('NOA_MQ_DRIVER_NOT_INSTALLED');
        expect(error?.message).toContain('npm install amqplib');
        expect((error?.cause as { code?: string } | undefined)?.code).toBe('ERR_MODULE_NOT_FOUND');
      }
    } finally {
      await queue.close();
      await provider.close();
    }
  });

  it('loads it once installed (the import is tried again, not remembered as failed)', async () => {
    let calls = 0;
    amqplibImport.load = () => {
      calls += 1;
      return calls === 1 ? import(/* @vite-ignore */ missing) : original();
    };
    const { loadAmqplib } = await import('../src/providers/rabbitmq/amqplib-import.js');
    await expect(loadAmqplib()).rejects.toBeInstanceOf(DriverNotInstalledError);
    const amqp = await loadAmqplib();
    expect(typeof amqp.connect).toBe('function');
    expect(calls).toBe(2);
  });
});
