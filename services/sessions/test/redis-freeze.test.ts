import t from 'tap'
import { Redis } from 'ioredis'
import { bearer, startRedisServer, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

t.test('with its Redis frozen the active session comes from Postgres, degraded, and from the cache again after SIGCONT', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const { app, config } = await build(t, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200', REDIS_FAILURE_THRESHOLD: '3' })
  const h = bearer(testToken('u-freeze'))
  const key = `${config.REDIS_KEY_PREFIX}session:active:user:u-freeze`
  const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 })
  probe.on('error', () => {}) // the probe's errors while Redis is frozen are expected; the test reads the app's answers
  t.teardown(() => probe.disconnect())
  await probe.connect()
  const active = () => app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
  const dependencies = async () => ({
    ready: (await app.inject({ method: 'GET', url: '/ready' })).json(),
    health: (await app.inject({ method: 'GET', url: '/health' })).json()
  })

  const a = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })).json()
  t.equal(await probe.get(key), a.id)
  const hit = await active()
  t.same([hit.statusCode, hit.json(), hit.headers['x-degradation-mode']], [200, { id: a.id }, undefined], 'a cache hit')

  redis.freeze()
  // Each of the first three reads waits for its command to time out, then answers from Postgres.
  for (let i = 0; i < 3; i++) {
    const r = await active()
    t.same([r.statusCode, r.json(), r.headers['x-degradation-mode']], [200, { id: a.id }, 'cache_unavailable'], `read ${i + 1} while frozen`)
  }
  await waitFor(() => app.redis.status !== 'ready', 15_000)
  const { ready, health } = await dependencies()
  t.equal(ready.checks.redis, 'down')
  t.equal(ready.status, 'degraded')
  t.same([health.status, health.checks.redis], ['degraded', 'down'])

  // Past the threshold Redis is skipped: reads and writes go on from Postgres.
  for (let i = 0; i < 20; i++) {
    const r = await active()
    if (r.statusCode !== 200 || r.headers['x-degradation-mode'] !== 'cache_unavailable') t.fail(`read ${i}: ${r.statusCode} ${r.body}`)
  }
  t.not(app.redis.status, 'ready', 'still down: nothing brought it back while frozen')
  const b = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })
  t.same([b.statusCode, b.headers['x-degradation-mode']], [201, 'cache_unavailable'])
  const degraded = await active()
  t.same([degraded.statusCode, degraded.json(), degraded.headers['x-degradation-mode']], [200, { id: b.json().id }, 'cache_unavailable'])

  redis.thaw()
  await waitFor(async () => (await dependencies()).ready.checks.redis === 'up', 15_000)
  const back = await waitFor(async () => {
    const r = await active()
    return r.headers['x-degradation-mode'] === undefined ? r : null
  }, 15_000)
  t.same([back.statusCode, back.json()], [200, { id: b.json().id }], 'the id written during the freeze, never the stale one')
  t.equal(await probe.get(key), b.json().id, 'the cache holds it again')

  // A hit refreshes the TTL (GETEX): proof that the read went to Redis, not to Postgres.
  await probe.expire(key, 100)
  const cached = await active()
  t.same([cached.statusCode, cached.json(), cached.headers['x-degradation-mode']], [200, { id: b.json().id }, undefined])
  t.ok((await probe.ttl(key)) > 100, 'the read used the cache')
  t.same((await dependencies()).health.status, 'healthy')
})
