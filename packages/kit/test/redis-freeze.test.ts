import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { ConfigError, healthPlugin, loadConfig, platformPlugins, redisPlugin, serviceConfig } from '../src/index.js'
import { RedisUnresponsiveError } from '../src/plugins/redis.js'
import { TEST_JWT_SECRET, startRedisServer, uniqueName, waitFor, type Throwaway } from '../src/testing/index.js'

/**
 * Resolves on the client's next `name` event; fails the test after a generous deadline instead of
 * hanging. (events.once would reject on the 'error' events a reconnecting client emits.)
 */
function next(redis: Redis, name: string, deadlineMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off(name, done)
      reject(new Error(`no '${name}' event within ${deadlineMs} ms`))
    }, deadlineMs)
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    redis.once(name, done)
  })
}

interface Test {
  teardown(fn: () => unknown): void
}

/** A redis-server of the test's own; removing it kills it, frozen or not. */
async function redisServer(t: Test): Promise<Throwaway> {
  const server = await startRedisServer()
  t.teardown(() => server.dispose())
  return server
}

async function appWith(t: Test, url: string, failureThreshold?: number): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(healthPlugin)
  await app.register(redisPlugin, {
    url,
    keyPrefix: `${uniqueName('rf')}:`,
    commandTimeoutMs: 200,
    ...(failureThreshold ? { failureThreshold } : {})
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

const redisState = async (app: FastifyInstance) => {
  const ready = (await app.inject({ method: 'GET', url: '/ready' })).json()
  const health = await app.inject({ method: 'GET', url: '/health' })
  return { ready: ready.checks.redis, health: health.statusCode === 200 ? health.json().status : `HTTP ${health.statusCode}` }
}

/** Every rejection of the commands a test sends, by message. */
function tally() {
  const seen: string[] = []
  return {
    seen,
    send: (p: Promise<unknown>) =>
      p.then(
        (value) => ({ ok: true as const, value }),
        (err: Error) => {
          seen.push(err.message)
          return { ok: false as const, message: err.message }
        }
      ),
    timeouts: () => seen.filter((m) => m === 'Command timed out').length
  }
}

t.test('a frozen Redis is marked down after the threshold of timeouts, fails at once, and is used again after SIGCONT', async (t) => {
  const server = await redisServer(t)
  const app = await appWith(t, server.url)
  const { redis } = app
  const unresponsive: RedisUnresponsiveError[] = []
  redis.on('error', (err: Error) => {
    if (err instanceof RedisUnresponsiveError) unresponsive.push(err)
  })
  await redis.set('k', 'v')
  t.same(await redisState(app), { ready: 'up', health: 'healthy' })

  server.freeze()
  const c = tally()
  for (let i = 0; i < 3; i++) t.same(await c.send(redis.get('k')), { ok: false, message: 'Command timed out' }, `timeout ${i + 1} of 3`)
  t.equal(unresponsive.length, 1, 'the third timeout in a row drops the connection')
  t.equal(unresponsive[0]!.code, 'REDIS_UNRESPONSIVE')
  t.equal(unresponsive[0]!.timeouts, 3)

  const after = await c.send(redis.get('k'))
  t.equal(after.ok, false)
  t.match(after, { message: /isn't writeable/ }, 'the next command fails at once with a connection error, not a timeout')
  await waitFor(() => redis.status !== 'ready', 15_000)
  t.same(await redisState(app), { ready: 'down', health: 'degraded' }, '/ready and /health show Redis down')

  // The reconnect's ready check runs under the command timeout: on a frozen server it fails, again and again.
  let readyEvents = 0
  redis.on('ready', () => readyEvents++)
  await next(redis, 'reconnecting')
  await next(redis, 'reconnecting')
  t.equal(readyEvents, 0, 'never ready while frozen')
  t.not(redis.status, 'ready')
  t.match(await c.send(redis.get('k')), { ok: false, message: /isn't writeable/ }, 'still failing at once')
  t.equal(c.timeouts(), 3, 'only the three commands before the threshold waited for a timeout')

  const back = next(redis, 'ready')
  server.thaw()
  await back
  t.same(await c.send(redis.get('k')), { ok: true, value: 'v' })
  t.same(await redisState(app), { ready: 'up', health: 'healthy' })
  t.equal(unresponsive.length, 1)
})

t.test('only consecutive timeouts count: an answer in between starts the count again', async (t) => {
  const server = await redisServer(t)
  const app = await appWith(t, server.url)
  const { redis } = app
  const unresponsive: Error[] = []
  redis.on('error', (err: Error) => {
    if (err instanceof RedisUnresponsiveError) unresponsive.push(err)
  })
  await redis.set('k', 'v')
  const c = tally()

  server.freeze()
  for (let i = 0; i < 2; i++) t.same(await c.send(redis.get('k')), { ok: false, message: 'Command timed out' })
  server.thaw()
  t.same(await c.send(redis.get('k')), { ok: true, value: 'v' }, 'Redis answers again on the same connection')

  server.freeze()
  for (let i = 0; i < 2; i++) t.same(await c.send(redis.get('k')), { ok: false, message: 'Command timed out' })
  t.equal(redis.status, 'ready', 'two timeouts after an answer are under the threshold')
  t.equal(unresponsive.length, 0)
  t.same(await c.send(redis.get('k')), { ok: false, message: 'Command timed out' }, 'so the next command still waits')
  t.equal(unresponsive.length, 1, 'and that third one in a row drops the connection')
  t.match(await c.send(redis.get('k')), { ok: false, message: /isn't writeable/ })
  t.equal(c.timeouts(), 5)
})

t.test('a Redis frozen at startup does not hold the start, counts as down, and is used once it answers', async (t) => {
  const server = await redisServer(t)
  server.freeze()
  const app = await appWith(t, server.url)
  t.not(app.redis.status, 'ready')
  t.same(await redisState(app), { ready: 'down', health: 'degraded' })
  t.match(await tally().send(app.redis.get('k')), { ok: false, message: /isn't writeable/ }, 'commands fail at once')

  const back = next(app.redis, 'ready')
  server.thaw()
  await back
  t.equal(await app.redis.set('k', 'v'), 'OK')
  t.same(await redisState(app), { ready: 'up', health: 'healthy' })
})

t.test('REDIS_FAILURE_THRESHOLD is validated at boot and reaches the client', async (t) => {
  const schema = serviceConfig({ port: 3999, schema: 'demo', name: 'demo' }, {})
  t.equal(loadConfig(schema, {}).REDIS_FAILURE_THRESHOLD, 3, 'three timeouts in a row by default')
  for (const bad of ['0', '-1', 'many']) {
    t.throws(() => loadConfig(schema, { REDIS_FAILURE_THRESHOLD: bad }), { name: ConfigError.name, message: /REDIS_FAILURE_THRESHOLD/ }, bad)
  }

  const server = await redisServer(t)
  const config = loadConfig(schema, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    REDIS_URL: server.url,
    REDIS_KEY_PREFIX: `${uniqueName('rf')}:`,
    REDIS_COMMAND_TIMEOUT_MS: '200',
    REDIS_FAILURE_THRESHOLD: '1'
  })
  const app = Fastify()
  await app.register(platformPlugins, { config, redis: true })
  await app.ready()
  t.teardown(() => app.close())
  t.equal(await app.redis.set('k', 'v'), 'OK')

  server.freeze()
  const c = tally()
  t.same(await c.send(app.redis.get('k')), { ok: false, message: 'Command timed out' })
  t.match(await c.send(app.redis.get('k')), { ok: false, message: /isn't writeable/ }, 'one timeout is enough with a threshold of 1')
})
