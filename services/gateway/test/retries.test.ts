import { createServer } from 'node:http'
import { test } from 'tap'
import { bearer, recordedSleep, testClock, testToken } from '@platform/kit/testing'
import { build, type BuildOptions } from './helper.js'
import { portOf, startFrozenUpstream, startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))
const json = { ...user, 'content-type': 'application/json' }

async function setup(t: Parameters<typeof build>[0], env: Record<string, string> = {}, opts: BuildOptions = {}) {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, MAX_RETRIES: '3', CIRCUIT_BREAKER_FAILURE_THRESHOLD: '50', ...env }, opts)
  const hitsOf = (key: string) => sessions.hits.filter((h) => h.url.includes(`/flaky/${key}`))
  return { app, sessions, hitsOf }
}

/** Answers the first request 503 with `Retry-After`, then takes every request and never answers. */
async function startOnceThenFrozen(t: Parameters<typeof build>[0], retryAfterSeconds: number) {
  let hits = 0
  const server = createServer((_req, res) => {
    if (++hits > 1) return
    res.writeHead(503, { 'retry-after': String(retryAfterSeconds), 'content-type': 'application/json' })
    res.end('{"code":"BUSY"}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { url: `http://127.0.0.1:${portOf(server)}`, hits: () => hits }
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
  t.same(
    hits.map((h) => h.bytes),
    [payload.length, payload.length, payload.length],
    'every attempt carried the whole body'
  )
  t.same(
    hits.map((h) => h.headers['idempotency-key']),
    ['create-1', 'create-1', 'create-1']
  )
})

// The waits below are recorded, not slept: each test asserts the exact delay the gateway chose.

test("an upstream's Retry-After is honoured", async (t) => {
  const { waits, sleep } = recordedSleep()
  const { app, hitsOf } = await setup(t, { RETRY_DELAY: '0.001' }, { sleep })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/ra?fail=1&code=503&retryAfter=1', headers: user })
  t.equal(res.statusCode, 200)
  t.equal(hitsOf('ra').length, 2)
  t.same(waits, [1000], 'one wait of Retry-After: 1, not the 1 ms backoff')
})

test('a Retry-After beyond the deadline is not waited for: the answer is relayed at once', async (t) => {
  const clock = testClock().freeze()
  const { waits, sleep } = recordedSleep(clock)
  const { app, hitsOf } = await setup(t, { REQUEST_DEADLINE_MS: '10000' }, { now: clock.now, sleep })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/late?fail=1&code=503&retryAfter=11', headers: user })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '11')
  t.equal(hitsOf('late').length, 1)
  t.same(waits, [], 'no wait at all')
})

test('a timed-out attempt is retried, up to MAX_RETRIES', async (t) => {
  const frozen = await startFrozenUpstream(t)
  // A stopped clock: the deadline never runs out here, only the retries do.
  const clock = testClock().freeze()
  const { waits, sleep } = recordedSleep(clock)
  const env = { SESSIONS_URLS: frozen.url, MAX_RETRIES: '2', UPSTREAM_TIMEOUT_MS: '100', CIRCUIT_BREAKER_FAILURE_THRESHOLD: '50' }
  const { app } = await build(t, env, { now: clock.now, sleep })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })
  t.equal(res.statusCode, 504)
  t.equal(res.json().code, 'UPSTREAM_TIMEOUT')
  t.equal(waits.length, 2)
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.ok(metrics.includes(`gateway_upstream_failures_total{service="sessions",instance="${frozen.url}",kind="timeout"} 3`), 'three timed-out attempts')
  t.match(metrics, /gateway_retries_total\{service="sessions",reason="timeout"\} 2/)
})

test('the attempt after a long wait gets only what is left of the deadline, and none follows it', async (t) => {
  // Real time flows; each recorded wait moves the clock by its length, so the deadline is spent exactly.
  const clock = testClock()
  const { waits, sleep } = recordedSleep(clock)
  const upstream = await startOnceThenFrozen(t, 599)
  const env = {
    SESSIONS_URLS: upstream.url,
    MAX_RETRIES: '3',
    // Ten minutes per attempt: a second attempt not cut to what is left would outlast the test's timeout.
    UPSTREAM_TIMEOUT_MS: '600000',
    REQUEST_DEADLINE_MS: '600000',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '50'
  }
  const { app } = await build(t, env, { now: clock.now, sleep })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })
  t.equal(res.statusCode, 504)
  t.equal(res.json().code, 'UPSTREAM_TIMEOUT')
  t.same(waits, [599_000], 'Retry-After: 599 fitted the deadline; after the timed-out attempt no backoff did')
  t.equal(upstream.hits(), 2, 'two attempts, of MAX_RETRIES + 1 = 4')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gateway_retries_total\{service="sessions",reason="status_503"\} 1/)
  t.notMatch(metrics, /gateway_retries_total\{service="sessions",reason="timeout"\}/)
  t.ok(metrics.includes(`gateway_upstream_failures_total{service="sessions",instance="${upstream.url}",kind="timeout"} 1`))
})

test('backoff grows by BACKOFF_FACTOR between attempts', async (t) => {
  const { waits, sleep } = recordedSleep()
  const { app, hitsOf } = await setup(t, { RETRY_DELAY: '0.1', BACKOFF_FACTOR: '2' }, { sleep })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/flaky/bo?fail=3&code=502', headers: user })
  t.equal(res.statusCode, 200)
  t.equal(hitsOf('bo').length, 4)
  // 100, 200, 400 ms, each between half and all of that (equal jitter).
  t.equal(waits.length, 3)
  waits.forEach((ms, i) => {
    const full = 100 * 2 ** i
    t.ok(ms >= full / 2 && ms <= full, `backoff ${i + 1}: ${ms} ms within [${full / 2}, ${full}]`)
  })
})
