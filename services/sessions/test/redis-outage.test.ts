import t from 'tap'
import { bearer, startRedisServer, startTcpProxy, testToken, waitFor } from '@platform/kit/testing'
import { Redis } from 'ioredis'
import { build } from './helper.js'

t.test('with Redis stopped everything works from Postgres, says so, and the cache is right when Redis returns', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  // A stopped Redis refuses at once; a generous command timeout keeps a busy machine's slow answer from counting as an outage.
  const { app, config, schema } = await build(t, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '5000' })
  const h = bearer(testToken('u1'))
  const key = `${config.REDIS_KEY_PREFIX}session:active:user:u1`
  const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 })
  probe.on('error', () => {}) // refused connections while Redis is stopped are the point of the test
  t.teardown(() => probe.disconnect())
  await probe.connect()

  const written = Date.now()
  const a = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })).json()
  t.equal(await probe.get(key), a.id, 'the cache holds the active id')
  // Redis counts the TTL down in real time: an hour at the write, less whatever has passed since.
  const ttl = await probe.pttl(key)
  const passed = Date.now() - written
  t.ok(ttl <= 3_600_000 && ttl >= 3_600_000 - passed, `TTL is the configured hour (${ttl} ms left, ${passed} ms after the write)`)

  await redis.stop()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.redis === 'down')

  const read = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
  t.equal(read.statusCode, 200)
  t.same(read.json(), { id: a.id })
  t.equal(read.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(read.headers['x-degradation-reason'], 'Cache unavailable: answered from the database')

  const b = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })
  t.equal(b.statusCode, 201)
  t.equal(b.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(b.headers['x-degradation-reason'], 'Cache unavailable: answered from the database')
  const switched = await app.inject({ method: 'POST', url: '/api/v1/sessions/active/a', headers: h })
  t.equal(switched.statusCode, 200)
  t.equal(switched.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(switched.headers['x-degradation-reason'], 'Cache unavailable: answered from the database')
  const again = await app.inject({ method: 'POST', url: '/api/v1/sessions/active/b', headers: h })
  t.equal(again.statusCode, 200)

  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'degraded', checks: { postgres: 'up', redis: 'down', nats: 'up', 'consumer:sessions-chat-interactions': 'up' } })
  const { rows } = await schema.query(`SELECT title FROM named_sessions WHERE active`)
  t.same(rows, [{ title: 'b' }], 'writes went to Postgres')

  await redis.start()
  await waitFor(() => probe.status === 'ready')
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.redis === 'up')
  const back = await waitFor(async () => {
    const r = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
    return r.headers['x-degradation-mode'] === undefined ? r : null
  })
  t.same(back.json(), { id: b.json().id })
  t.equal(back.headers['x-degradation-reason'], undefined, 'no reason without a mode')
  t.equal(await probe.get(key), b.json().id, 'the cache is right again')
})

t.test('a write whose cache update failed leaves no stale id once Redis answers again', async (t) => {
  // A network cut, not a restart: Redis keeps the old id while the app cannot reach it.
  const redis = await startRedisServer()
  const proxy = await startTcpProxy(redis.port)
  t.teardown(async () => {
    await proxy.close()
    await redis.dispose()
  })
  const { app, config } = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_COMMAND_TIMEOUT_MS: '5000' })
  const h = bearer(testToken('u2'))
  const key = `${config.REDIS_KEY_PREFIX}session:active:user:u2`
  const direct = new Redis(redis.url)
  t.teardown(() => direct.disconnect())
  const a = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })).json()
  t.equal(await direct.get(key), a.id)

  proxy.cut()
  const b = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })
  t.equal(b.statusCode, 201)
  t.equal(b.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(b.headers['x-degradation-reason'], 'Cache unavailable: answered from the database')
  t.equal(await direct.get(key), a.id, 'Redis still holds the old id')

  proxy.restore()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.redis === 'up')
  const read = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
  t.same(read.json(), { id: b.json().id }, 'the stale id is never served')
  t.equal(await direct.get(key), b.json().id, 'and Redis holds the right one again')
})
