import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { app, close } = createApp();
const server = app.listen(port, () => {
  console.log(`Noa demo listening on http://localhost:${port}`);
});
const stop = () => server.close(() => void close());
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
