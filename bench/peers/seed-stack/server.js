// The seed's stack ("Scaling the Task Management API", shared/seed), assembled into a runnable
// service so that the bench can measure task-api against it: Express, the cacheMiddleware on
// ioredis, rate-limiter-flexible's RateLimiterRedis, prom-client's http_request_duration_seconds,
// winston JSON logging, JWT auth (jsonwebtoken), and node-postgres in place of Prisma (its engine
// binary cannot be downloaded here) with the seed's pool settings. README.md says what differs.
// Only the routes of the bench's workload: login, list, create, update; /health, /metrics.
import { randomUUID } from 'node:crypto';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { URL } from 'node:url';
import { verify as verifyPassword } from '@node-rs/argon2';
import express from 'express';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import promClient from 'prom-client';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import winston from 'winston';

const env = process.env;
const int = (name, dflt) => {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number: ${v}`);
  return n;
};

const JWT_SECRET = env.JWT_SECRET;
if (!JWT_SECRET) throw new Error('JWT_SECRET is required');

// config/logger.ts: JSON, level info, service and environment as default meta. The seed ships to
// Logstash and writes errors to error.log; here the lines go to stdout (a log shipper's input).
const logger = winston.createLogger({
  level: env.LOG_LEVEL ?? 'info',
  format: winston.format.json(),
  defaultMeta: { service: 'task-api', environment: env.NODE_ENV },
  transports: [new winston.transports.Console()],
});

// config/database.ts: a write client and a read client (DATABASE_READ_URL, a replica). Prisma's
// connection_limit=10&pool_timeout=10&connect_timeout=10 as node-postgres settings. With no
// replica configured both are one pool (as two Prisma clients on one URL would double the
// connections against the same server).
const poolSettings = (connectionString) => ({
  connectionString,
  max: int('DATABASE_POOL_MAX', 10), // connection_limit
  connectionTimeoutMillis: int('DATABASE_POOL_TIMEOUT_S', 10) * 1000, // pool_timeout
  // connect_timeout=10: node-postgres has one timeout for both waits (above).
});
const db = new pg.Pool(poolSettings(env.DATABASE_URL));
const dbRead = env.DATABASE_READ_URL && env.DATABASE_READ_URL !== env.DATABASE_URL ? new pg.Pool(poolSettings(env.DATABASE_READ_URL)) : db;
for (const p of new Set([db, dbRead])) p.on('error', (err) => logger.error('postgres pool error', { err: err.message }));

// config/redis.ts; REDIS_KEY_PREFIX keeps the bench's keys apart from anything else on the server.
const redisUrl = new URL(env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const redis = new Redis({
  host: env.REDIS_HOST || redisUrl.hostname,
  port: parseInt(env.REDIS_PORT || redisUrl.port || '6379'),
  password: env.REDIS_PASSWORD,
  db: int('REDIS_DB', 0),
  keyPrefix: env.REDIS_KEY_PREFIX ?? '',
  retryStrategy: (times) => Math.min(times * 50, 2000),
});
redis.on('error', (err) => logger.error('redis error', { err: err.message }));

// Rate Limiting (Distributed): 10 points per second per IP, block 60 s. RATE_LIMIT_* lift the
// numbers for the bench, as the bench lifts task-api's.
const rateLimiter = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: 'ratelimit',
  points: int('RATE_LIMIT_POINTS', 10),
  duration: int('RATE_LIMIT_DURATION', 1),
  blockDuration: int('RATE_LIMIT_BLOCK_DURATION', 60),
});
const distributedRateLimit = async (req, res, next) => {
  try {
    await rateLimiter.consume(req.ip);
    next();
  } catch {
    res.status(429).json({ error: 'Too many requests' });
  }
};

// middleware/metrics.ts
const httpRequestDuration = new promClient.Histogram({
  name: 'http_request_duration_seconds',
  help: 'Duration of HTTP requests in seconds',
  labelNames: ['method', 'route', 'status_code'],
});
const metricsMiddleware = (req, res, next) => {
  const start = Date.now();
  res.on('finish', () => {
    const duration = (Date.now() - start) / 1000;
    httpRequestDuration.labels(req.method, req.route?.path || req.path, res.statusCode.toString()).observe(duration);
    // One line per request, through the logger above.
    logger.info('request', { method: req.method, url: req.originalUrl, status: res.statusCode, durationMs: Date.now() - start, ip: req.ip });
  });
  next();
};

// JWT auth (the seed: "Use JWT for stateless authentication (already implemented)").
const JWT_TTL = env.JWT_EXPIRES_IN ?? '24h';
const authenticate = (req, res, next) => {
  const header = req.headers.authorization;
  if (!header?.startsWith('Bearer ')) return res.status(401).json({ error: 'Unauthorized' });
  try {
    const payload = jwt.verify(header.slice(7), JWT_SECRET);
    req.user = { id: payload.sub, role: payload.role };
    next();
  } catch {
    res.status(401).json({ error: 'Invalid token' });
  }
};

// middleware/cache.ts, as the seed has it: key cache:<user>:<url>, 300 s, stored on res.json.
// The seed invalidates with redis.del(`cache:${userId}:/v1/tasks*`), which deletes nothing (DEL
// takes key names, not patterns). To invalidate what it means to, each stored key is also added
// to a per-user set, and a write deletes the keys of that set.
const cacheIndex = (userId) => `cacheidx:${userId}`;
const cacheMiddleware = (ttl = 300) => {
  return async (req, res, next) => {
    const key = `cache:${req.user.id}:${req.originalUrl}`;
    const cached = await redis.get(key);
    if (cached) {
      return res.json(JSON.parse(cached));
    }
    const originalJson = res.json.bind(res);
    res.json = (data) => {
      redis.multi().setex(key, ttl, JSON.stringify(data)).sadd(cacheIndex(req.user.id), key).expire(cacheIndex(req.user.id), ttl).exec().catch(() => undefined);
      return originalJson(data);
    };
    next();
  };
};
async function invalidateUserTasks(userId) {
  const keys = await redis.smembers(cacheIndex(userId));
  // The set holds the names unprefixed; ioredis prefixes each again on DEL.
  await redis.del(cacheIndex(userId), ...keys);
}

// The task as task-api answers it (same columns, same JSON shape).
const COLUMNS = 'id, title, description, status, priority, due_at, tags, created_at, updated_at, completed_at, version';
const iso = (d) => (d ? d.toISOString() : null);
const toTask = (r) => ({
  id: r.id,
  title: r.title,
  description: r.description,
  status: r.status,
  priority: r.priority,
  dueAt: iso(r.due_at),
  tags: r.tags,
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
  completedAt: iso(r.completed_at),
  version: r.version,
});
const STATUSES = ['todo', 'in_progress', 'done'];
const PRIORITIES = ['low', 'medium', 'high', 'urgent'];
const badRequest = (res, error) => res.status(400).json({ error });

function validTask(body, partial) {
  if (typeof body !== 'object' || body === null) return 'body must be an object';
  const { title, description, status, priority, dueAt, tags } = body;
  if (!partial || title !== undefined) {
    if (typeof title !== 'string' || title.trim() === '' || title.length > 200) return 'title must be 1-200 characters';
  }
  if (description !== undefined && description !== null && (typeof description !== 'string' || description.length > 10000)) return 'bad description';
  if (status !== undefined && !STATUSES.includes(status)) return 'bad status';
  if (priority !== undefined && !PRIORITIES.includes(priority)) return 'bad priority';
  if (dueAt !== undefined && dueAt !== null && Number.isNaN(Date.parse(dueAt))) return 'bad dueAt';
  if (tags !== undefined && (!Array.isArray(tags) || tags.length > 20 || tags.some((t) => typeof t !== 'string' || t.length < 1 || t.length > 50))) return 'bad tags';
  return undefined;
}

// TaskService: reads on the read client, writes on the write client.
const taskService = {
  async getTasks(userId, { page, limit }) {
    const { rows } = await dbRead.query(`SELECT ${COLUMNS} FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, [userId, limit, (page - 1) * limit]);
    return rows.map(toTask);
  },
  async createTask(userId, data) {
    const now = new Date();
    const { rows } = await db.query(
      `INSERT INTO tasks (user_id, id, title, description, status, priority, due_at, tags, created_at, updated_at, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING ${COLUMNS}`,
      [userId, randomUUID(), data.title, data.description ?? null, data.status ?? 'todo', data.priority ?? 'medium', data.dueAt ?? null, data.tags ?? [], now, data.status === 'done' ? now : null],
    );
    await invalidateUserTasks(userId);
    return toTask(rows[0]);
  },
  async updateTask(userId, id, data) {
    const sets = [];
    const values = [userId, id];
    const set = (column, value) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    for (const [field, column] of [['title', 'title'], ['description', 'description'], ['priority', 'priority'], ['dueAt', 'due_at'], ['tags', 'tags']]) {
      if (data[field] !== undefined) set(column, data[field]);
    }
    if (data.status !== undefined) {
      set('status', data.status);
      sets.push(data.status === 'done' ? 'completed_at = coalesce(completed_at, now())' : 'completed_at = NULL');
    }
    sets.push('updated_at = now()', 'version = version + 1');
    const { rows } = await db.query(`UPDATE tasks SET ${sets.join(', ')} WHERE user_id = $1 AND id = $2 RETURNING ${COLUMNS}`, values);
    if (rows.length === 0) return undefined;
    await invalidateUserTasks(userId);
    return toTask(rows[0]);
  },
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '100kb' }));
app.use(metricsMiddleware);

app.get('/health', (_req, res) => res.json({ status: 'ok' }));
app.get('/metrics', async (_req, res) => {
  res.set('Content-Type', promClient.register.contentType);
  res.end(await promClient.register.metrics());
});

// The project's users (argon2id hashes in users.password_hash), verified with the same package.
app.post('/v1/auth/login', distributedRateLimit, async (req, res) => {
  const { email, password } = req.body ?? {};
  if (typeof email !== 'string' || typeof password !== 'string') return badRequest(res, 'email and password are required');
  const { rows } = await db.query('SELECT id, role, password_hash FROM users WHERE email = $1', [email.trim().toLowerCase()]);
  const user = rows[0];
  if (!user || !(await verifyPassword(user.password_hash, password).catch(() => false))) return res.status(401).json({ error: 'Invalid credentials' });
  const accessToken = jwt.sign({ sub: user.id, role: user.role }, JWT_SECRET, { expiresIn: JWT_TTL });
  res.json({ user: { id: user.id, email: email.trim().toLowerCase(), role: user.role }, accessToken });
});

const tasks = express.Router();
tasks.get('/', authenticate, cacheMiddleware(300), async (req, res) => {
  const limit = Math.min(100, Math.max(1, parseInt(req.query.limit ?? '20', 10) || 20));
  const page = Math.max(1, parseInt(req.query.page ?? '1', 10) || 1);
  const data = await taskService.getTasks(req.user.id, { page, limit });
  res.json({ data, page, limit });
});
tasks.post('/', authenticate, async (req, res) => {
  const problem = validTask(req.body, false);
  if (problem) return badRequest(res, problem);
  const task = await taskService.createTask(req.user.id, req.body);
  res.status(201).location(`/v1/tasks/${task.id}`).json(task);
});
tasks.patch('/:id', authenticate, async (req, res) => {
  if (!UUID.test(req.params.id)) return res.status(404).json({ error: 'Not found' });
  const problem = validTask(req.body, true);
  if (problem) return badRequest(res, problem);
  const task = await taskService.updateTask(req.user.id, req.params.id, req.body);
  if (!task) return res.status(404).json({ error: 'Not found' });
  res.json(task);
});
app.use('/v1/tasks', distributedRateLimit, tasks);

// Express 5 passes a rejected handler's error here.
app.use((err, req, res, _next) => {
  logger.error('request failed', { err: err.message, method: req.method, url: req.originalUrl });
  if (!res.headersSent) res.status(err.status && err.status < 500 ? err.status : 500).json({ error: err.status && err.status < 500 ? err.message : 'Internal server error' });
});

const port = int('PORT', 3000);
const host = env.HOST ?? '127.0.0.1';
const server = app.listen(port, host, () => logger.warn('listening', { host, port }));
server.keepAliveTimeout = 65_000;

const shutdown = () => {
  server.close(() => {
    Promise.allSettled([...new Set([db, dbRead])].map((p) => p.end()))
      .then(() => redis.quit())
      .finally(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 5000).unref();
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
