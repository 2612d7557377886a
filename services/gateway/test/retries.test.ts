import { test } from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'
import { startFrozenUpstream, startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))
const json = { ...user, 'content-type': 'application/json' }

async function setup(t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, MAX_RETRIES: '3', CIRCUIT_BREAKER_FAILURE_THRESHOLD: '50', ...env })
  const hitsOf = (key: string) => sessions.hits.filter((h) => h.url.includes(`/flaky/${key}`))
  return { app, sessions, hitsOf }
}

test('a GET is retried on 502, 503 and 504 until it succeeds', async (t) => {
  const { app, hitsOf } = await setup(t)
  for (const code of [502, 503, 504]) {
    const res = await app.inject({ method: 'GET', url: `/api/v1/sessions/flaky/g${code}?fail=2&code=${code}`, headers: user })
    t.equal(res.statusCode, 200, `${code} twice, then 200`)
    t.equal(res.json().attempt, 3)
    t.equal(hitsOf(`g${code}`).length, 3)
  }
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gateway_retries_total\{service="sessions",reason="status_503"\} 2/)
})

test('retries stop at MAX_RETRIES and the last answer is relayed', async (t) => {
  const { app, hitsOf } = await setup(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/many?fail=10&code=503', headers: user })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { instance: 'sessions', attempt: 4 })
  t.equal(hitsOf('many').length, 4, 'one attempt and three retries')
})

test('other 5xx and 4xx are not retried', async (t) => {
  const { app, hitsOf } = await setup(t)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/e500?fail=1&code=500', headers: user })).statusCode, 500)
  t.equal(hitsOf('e500').length, 1)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/e429?fail=1&code=429', headers: user })).statusCode, 429)
  t.equal(hitsOf('e429').length, 1)
})

test('POST, PATCH and DELETE without Idempotency-Key are never retried', async (t) => {
  const { app, hitsOf } = await setup(t)
  for (const method of ['POST', 'PATCH', 'DELETE'] as const) {
    const res = await app.inject({ method, url: `/api/v1/sessions/flaky/w${method}?fail=1&code=503`, headers: json, payload: '{"title":"x"}' })
    t.equal(res.statusCode, 503, method)
    t.equal(hitsOf(`w${method}`).length, 1, `${method} reached the upstream once`)
  }
})

test('a write with Idempotency-Key is retried with the same body', async (t) => {
  const { app, hitsOf } = await setup(t)
  const payload = JSON.stringify({ title: 'retried', pad: 'x'.repeat(5000) })
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/sessions/flaky/idem?fail=2&code=503',
    headers: { ...json, 'idempotency-key': 'create-1' },
    payload
  })
  t.equal(res.statusCode, 200)
  t.equal(res.json().attempt, 3)
  const hits = hitsOf('idem')
  t.same(hits.map((h) => h.bytes), [payload.length, payload.length, payload.length], 'every attempt carried the whole body')
  t.same(hits.map((h) => h.headers['idempotency-key']), ['create-1', 'create-1', 'create-1'])
})

test("an upstream's Retry-After is honoured", async (t) => {
  const { app, hitsOf } = await setup(t, { RETRY_DELAY: '0.001' })
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/ra?fail=1&code=503&retryAfter=1', headers: user })
  const took = performance.now() - started
  t.equal(res.statusCode, 200)
  t.equal(hitsOf('ra').length, 2)
  t.ok(took >= 1000 && took < 1800, `waited ${took.toFixed(0)} ms for Retry-After: 1`)
})

test('a Retry-After beyond the deadline is not waited for: the answer is relayed at once', async (t) => {
  const { app, hitsOf } = await setup(t, { REQUEST_DEADLINE_MS: '800' })
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/late?fail=1&code=503&retryAfter=5', headers: user })
  t.ok(performance.now() - started < 500)
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
  t.equal(hitsOf('late').length, 1)
})

test('timeouts are retried within the overall deadline, never past it', async (t) => {
  const frozen = await startFrozenUpstream(t)
  const { app } = await build(t, {
    SESSIONS_URLS: frozen.url,
    MAX_RETRIES: '3',
    UPSTREAM_TIMEOUT_MS: '120',
    REQUEST_DEADLINE_MS: '300',
    RETRY_DELAY: '0.001',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '50'
  })
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })
  const took = performance.now() - started
  t.equal(res.statusCode, 504)
  t.equal(res.json().code, 'UPSTREAM_TIMEOUT')
  t.ok(took >= 290 && took < 450, `gave up after ${took.toFixed(0)} ms (deadline 300)`)
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const failures = `gateway_upstream_failures_total{service="sessions",instance="${frozen.url}",kind="timeout"} 3`
  t.ok(metrics.includes(failures), '120 + 120 + the 60 ms left: three timed-out attempts')
  t.match(metrics, /gateway_retries_total\{service="sessions",reason="timeout"\} 2/)
})

test('backoff grows by BACKOFF_FACTOR between attempts', async (t) => {
  const { app, hitsOf } = await setup(t, { RETRY_DELAY: '0.1', BACKOFF_FACTOR: '2' })
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/bo?fail=3&code=502', headers: user })
  const took = performance.now() - started
  t.equal(res.statusCode, 200)
  t.equal(hitsOf('bo').length, 4)
  // 100, 200, 400 ms, each at least half of that with jitter: 350..700 ms in all.
  t.ok(took >= 350 && took < 1000, `three backoffs took ${took.toFixed(0)} ms`)
})
