// Child process: the HTTP ceiling, node:http answering a fixed JSON body (what /health/live
// answers). Prints its port on stdout.
import { createServer } from 'node:http';

const body = Buffer.from(JSON.stringify({ status: 'ok' }));
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 72_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
