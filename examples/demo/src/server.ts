import { createApp } from './app.js';
import { type DemoEnv, readDemoEnv } from './config.js';

// Memory mode unless REDIS_URL, DATABASE_URL and AMQP_URL are set (`eval "$(scripts/services env)"`).
let env: DemoEnv;
try {
  env = readDemoEnv(process.env);
} catch (error) {
  console.error(`Noa demo: ${(error as Error).message}`);
  process.exit(1);
}
const demo = createApp({ services: env.services });
try {
  await demo.ready();
} catch (error) {
  console.error(`Noa demo could not start: ${(error as Error).message}`);
  // Every close is bounded (the providers' closeTimeoutMs), also with a service missing.
  await demo.close();
  process.exit(1);
}
// Express 5 hands a listen failure (port in use, no permission) to this callback instead of
// throwing: without the check the demo would announce a port another process answers on.
const server = demo.app.listen(env.port, async (error?: Error) => {
  if (error) {
    console.error(
      `Noa demo could not listen on port ${env.port}: ${error.message} (set PORT to a free port)`,
    );
    await demo.close();
    process.exit(1);
  }
  console.log(`Noa demo (${demo.mode} mode) listening on http://localhost:${env.port}`);
});
const stop = (delayMs: number) => () => {
  // Readiness (and liveness) answer 503 at once, while the routes still serve for `delayMs`: the
  // endpoints drop this instance before its server and components close (terminus, lightship).
  demo.beginShutdown();
  setTimeout(() => {
    server.close(() => void demo.close());
    // Closing waits for in-flight jobs; the packages bound their own closes, this is a safety net.
    setTimeout(() => process.exit(1), 15_000).unref();
  }, delayMs);
};
// Ctrl-C closes at once; SIGTERM (Kubernetes) waits SHUTDOWN_DELAY_MS (default 5 s) first.
process.once('SIGINT', stop(0));
process.once('SIGTERM', stop(env.shutdownDelayMs ?? 5_000));
