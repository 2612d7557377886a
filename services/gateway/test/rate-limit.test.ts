import { test } from 'tap'
import { bearer, startRedisServer, testToken, uniqueName, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'
import { startUpstream } from './upstream.js'

const u1 = bearer(testToken('u1', ['user']))
const u2 = bearer(testToken('u2', ['user']))

test('anonymous clients are limited by address, with RateLimit-* headers and a 429 that says when to retry', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, RATE_LIMIT_ANONYMOUS: '3', RATE_LIMIT_WINDOW_SECONDS: '60' })
  // The window is Redis's (real time): what is left of it lies between 60 s and 60 s minus what has passed.
  const started = Date.now()
  const secondsLeft = (value: unknown, what: string) => {
    const n = Number(value)
    const least = Math.ceil((60_000 - (Date.now() - started)) / 1000)
    t.ok(Number.isInteger(n) && n >= least && n <= 60, `${what}: ${String(value)} s left of the 60 s window (at least ${least})`)
    return n
  }
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/sessions' })
    t.equal(res.statusCode, 401, 'counted, then refused for the missing token')
    t.equal(res.headers['ratelimit-limit'], '3')
    t.equal(res.headers['ratelimit-remaining'], String(3 - i))
    secondsLeft(res.headers['ratelimit-reset'], 'RateLimit-Reset')
  }
  const limited = await app.inject({ method: 'GET', url: '/api/v1/sessions' })
  t.equal(limited.statusCode, 429)
  const retryAfter = secondsLeft(limited.json().retryAfter, 'retryAfter')
  t.same(limited.json(), {
    error: 'Too Many Requests',
    message: `Too many requests: retry after ${retryAfter} seconds (Retry-After)`,
    code: 'RATE_LIMITED',
    requestId: limited.headers['x-request-id'],
    retryAfter
  })
  t.equal(limited.headers['retry-after'], String(retryAfter))
  t.equal(limited.headers['ratelimit-limit'], '3')
  t.equal(limited.headers['ratelimit-remaining'], '0')
  t.equal(limited.headers['x-degradation-mode'], undefined)
  t.equal(sessions.hits.length, 0)
  const bad = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer('not.a.jwt') })
  t.equal(bad.statusCode, 429, 'a bad token counts as anonymous')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gateway_rate_limit_rejections_total\{identity="anonymous",store="shared"\} 2/)
})

test('a verified user is limited by sub, apart from others and from anonymous traffic', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, RATE_LIMIT_ANONYMOUS: '2', RATE_LIMIT_AUTHENTICATED: '4' })
  for (let i = 0; i < 4; i++) t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: u1 })).statusCode, 200)
  const limited = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: u1 })
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['ratelimit-limit'], '4')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: u2 })).statusCode, 200, 'another user has their own budget')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions' })).statusCode, 401, 'anonymous traffic from the same address too')
  t.equal(sessions.hits.length, 5)
})

test('writes count in their own, tighter bucket', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, RATE_LIMIT_AUTHENTICATED: '10' })
  const post = () =>
    app.inject({ method: 'POST', url: '/api/v1/sessions', headers: { ...u1, 'content-type': 'application/json' }, payload: '{"title":"t"}' })
  for (let i = 0; i < 3; i++) {
    const res = await post()
    t.equal(res.statusCode, 200)
    t.equal(res.headers['ratelimit-limit'], '3', '30 % of 10')
  }
  t.equal((await post()).statusCode, 429)
  const read = await app.inject({ method: 'GET', url: '/api/v1/chat/x', headers: u1 })
  t.equal(read.headers['ratelimit-limit'], '10', 'reads are untouched')
  t.equal(read.headers['ratelimit-remaining'], '9')
})

test('X-Forwarded-For from an untrusted peer cannot change the bucket', async (t) => {
  const { app } = await build(t, { RATE_LIMIT_ANONYMOUS: '2' })
  const codes = []
  for (const ip of ['1.1.1.1', '2.2.2.2', '3.3.3.3', '4.4.4.4']) {
    codes.push((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { 'x-forwarded-for': ip, 'x-real-ip': ip } })).statusCode)
  }
  t.same(codes, [401, 401, 429, 429])
})

test("a trusted proxy's X-Forwarded-For names the client", async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, RATE_LIMIT_ANONYMOUS: '2', TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8' })
  const from = (xff: string) => app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { 'x-forwarded-for': xff } })
  t.same([(await from('1.1.1.1')).statusCode, (await from('1.1.1.1')).statusCode, (await from('1.1.1.1')).statusCode], [401, 401, 429])
  t.equal((await from('2.2.2.2')).statusCode, 401, 'another client behind the proxy has its own bucket')
  t.equal((await from('6.6.6.6, 1.1.1.1')).statusCode, 429, 'what the client wrote left of the address the proxy saw does not count')
  t.equal((await from('1.1.1.1, 10.1.1.1')).statusCode, 429, 'trusted hops are skipped, right to left')
  t.equal((await from('3.3.3.3, 10.1.1.1')).statusCode, 401)
  await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { ...u1, 'x-forwarded-for': '9.9.9.9' } })
  t.equal(sessions.hits[0]?.headers['x-forwarded-for'], '9.9.9.9', 'the upstream learns the client address')
})

test('two gateway instances share one limit through Redis', async (t) => {
  const prefix = `${uniqueName('shared')}:`
  const a = await build(t, { REDIS_KEY_PREFIX: prefix, RATE_LIMIT_ANONYMOUS: '4' })
  const b = await build(t, { REDIS_KEY_PREFIX: prefix, RATE_LIMIT_ANONYMOUS: '4' })
  const remaining = []
  for (const g of [a, b, a, b]) remaining.push((await g.app.inject({ method: 'GET', url: '/api/v1/sessions' })).headers['ratelimit-remaining'])
  t.same(remaining, ['3', '2', '1', '0'])
  t.equal((await a.app.inject({ method: 'GET', url: '/api/v1/sessions' })).statusCode, 429)
  t.equal((await b.app.inject({ method: 'GET', url: '/api/v1/sessions' })).statusCode, 429)
})

test('Redis stopped: each instance limits locally and says so; Redis back: shared again without a restart', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `${uniqueName('outage')}:`, RATE_LIMIT_ANONYMOUS: '3' }
  const a = await build(t, env)
  const b = await build(t, env)
  const hit = (g: typeof a) => g.app.inject({ method: 'GET', url: '/api/v1/sessions' })
  const redisUp = async (g: typeof a) => (await g.app.inject({ method: 'GET', url: '/health' })).json().redis === 'up'
  await waitFor(async () => (await redisUp(a)) && (await redisUp(b)))
  const shared = await hit(a)
  t.equal(shared.headers['ratelimit-remaining'], '2')
  t.equal(shared.headers['x-degradation-mode'], undefined)

  await redis.stop()
  const localA = []
  for (let i = 0; i < 3; i++) {
    const res = await hit(a)
    t.equal(res.statusCode, 401, 'never an error')
    t.equal(res.headers['x-degradation-mode'], 'rate_limit_local')
    t.equal(res.headers['x-degradation-reason'], 'Redis unavailable: limits counted per instance')
    localA.push(res.headers['ratelimit-remaining'])
  }
  t.same(localA, ['2', '1', '0'], 'counted in memory from the outage on')
  const overA = await hit(a)
  t.equal(overA.statusCode, 429, 'never unlimited')
  t.equal(overA.headers['x-degradation-mode'], 'rate_limit_local')
  t.equal(overA.headers['x-degradation-reason'], 'Redis unavailable: limits counted per instance')
  t.equal(overA.json().code, 'RATE_LIMITED')
  const localB = await hit(b)
  t.equal(localB.headers['ratelimit-remaining'], '2', 'each instance has its own local count')
  t.equal(localB.headers['x-degradation-mode'], 'rate_limit_local')
  t.equal(localB.headers['x-degradation-reason'], 'Redis unavailable: limits counted per instance')
  t.equal((await a.app.inject({ method: 'GET', url: '/health' })).json().redis, 'down')

  await redis.start() // an empty Redis: counting starts over, shared
  await waitFor(async () => (await redisUp(a)) && (await redisUp(b)), 10_000)
  const back = []
  for (const g of [a, b, a, b]) {
    const res = await hit(g)
    t.equal(res.headers['x-degradation-mode'], undefined)
    t.equal(res.headers['x-degradation-reason'], undefined)
    back.push(res.headers['ratelimit-remaining'])
  }
  t.same(back, ['2', '1', '0', '0'])
  t.equal((await hit(a)).statusCode, 429)
  const metrics = (await a.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gateway_degradations_total\{mode="rate_limit_local"\} 4/)
  t.match(metrics, /gateway_rate_limit_rejections_total\{identity="anonymous",store="local"\} 1/)
})
