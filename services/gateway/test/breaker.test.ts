import { test } from 'tap'
import { bearer, testToken, waitFor, sleep } from '@platform/kit/testing'
import { build } from './helper.js'
import { startFrozenUpstream, startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))
const get = (app: Awaited<ReturnType<typeof build>>['app'], url = '/api/v1/sessions') => app.inject({ method: 'GET', url, headers: user })

const breakerGauge = async (app: Awaited<ReturnType<typeof build>>['app'], service: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`gateway_circuit_breaker_state{service="${service}"`))
  return line ? Number(line.split(' ').pop()) : NaN
}

test('a stopped upstream: 502s, the breaker opens at the threshold, fast 503s, then a probe closes it', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const chat = await startUpstream(t, 'chat')
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    CHAT_URLS: chat.url,
    MAX_RETRIES: '0',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '5',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '0.4'
  })
  t.equal((await get(app)).statusCode, 200)
  await sessions.stop()

  for (let i = 1; i <= 5; i++) {
    const res = await get(app)
    t.equal(res.statusCode, 502, `failure ${i}`)
    t.equal(res.json().code, 'UPSTREAM_ERROR')
    t.equal(res.json().message, 'The sessions service could not be reached or broke the connection; retry later')
    t.equal(res.headers['x-degradation-mode'], undefined)
  }
  t.equal(await breakerGauge(app, 'sessions'), 2, 'open after 5 failures')

  await sessions.start() // back already, but the breaker waits for its recovery timeout
  const started = performance.now()
  for (let i = 0; i < 20; i++) {
    const res = await get(app)
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'CIRCUIT_OPEN')
    t.equal(res.json().retryAfter, 1)
    t.equal(res.headers['retry-after'], '1')
    t.equal(res.headers['x-degradation-mode'], 'sessions_unavailable')
  }
  t.ok(performance.now() - started < 400, 'open answers come at once')
  t.equal(sessions.hits.length, 1, 'nothing reached the upstream while open')

  const other = await get(app, '/api/v1/chat/sessions')
  t.equal(other.statusCode, 200, 'other upstreams are unaffected')

  const health = (await app.inject({ method: 'GET', url: '/health' })).json()
  t.equal(health.status, 'degraded')
  t.equal(health.services.sessions.breaker, 'open')
  t.equal(health.services.chat.breaker, 'closed')

  await sleep(450)
  t.equal(await breakerGauge(app, 'sessions'), 1, 'half-open after the recovery timeout')
  const probe = await get(app)
  t.equal(probe.statusCode, 200, 'the half-open probe succeeds')
  t.equal(await breakerGauge(app, 'sessions'), 0, 'and closes the breaker')
  for (let i = 0; i < 3; i++) t.equal((await get(app)).statusCode, 200)
  t.equal(sessions.hits.length, 5)
})

test('a failed half-open probe opens the breaker again', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    MAX_RETRIES: '0',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '0.2'
  })
  await sessions.stop()
  t.equal((await get(app)).statusCode, 502)
  t.equal((await get(app)).statusCode, 502)
  t.equal((await get(app)).statusCode, 503)
  await sleep(250)
  t.equal((await get(app)).statusCode, 502, 'the probe goes through and fails')
  const again = await get(app)
  t.equal(again.statusCode, 503, 'open again at once')
  t.equal(again.json().code, 'CIRCUIT_OPEN')
  t.equal(await breakerGauge(app, 'sessions'), 2)
})

test('a frozen upstream times out with 504 and opens its breaker', async (t) => {
  const frozen = await startFrozenUpstream(t)
  const { app } = await build(t, {
    SESSIONS_URLS: frozen.url,
    MAX_RETRIES: '0',
    UPSTREAM_TIMEOUT_MS: '150',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '3',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '10'
  })
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    const res = await get(app)
    const took = performance.now() - started
    t.equal(res.statusCode, 504)
    t.same(res.json(), {
      error: 'Gateway Timeout',
      message: 'The sessions service did not answer in time; retry later',
      code: 'UPSTREAM_TIMEOUT',
      requestId: res.headers['x-request-id']
    })
    t.ok(took >= 140 && took < 1000, `timed out after ${took.toFixed(0)} ms`)
  }
  const open = await get(app)
  t.equal(open.statusCode, 503)
  t.equal(open.json().code, 'CIRCUIT_OPEN')
  t.equal(open.headers['retry-after'], '10')
})

test('4xx answers never count against the breaker', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2', CIRCUIT_BREAKER_MIN_VOLUME: '2' })
  for (let i = 0; i < 10; i++) t.equal((await get(app, '/api/v1/sessions/x/status/404')).statusCode, 404)
  t.equal((await get(app)).statusCode, 200)
  t.equal(await breakerGauge(app, 'sessions'), 0)
})

test('≥ 50 % errors over the window open the breaker once the window holds the minimum volume', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    MAX_RETRIES: '0',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '100',
    CIRCUIT_BREAKER_MIN_VOLUME: '10',
    CIRCUIT_BREAKER_WINDOW_SECONDS: '30'
  })
  for (let i = 0; i < 5; i++) {
    t.equal((await get(app)).statusCode, 200)
    t.equal((await get(app, '/api/v1/sessions/x/status/500')).statusCode, 500, 'a 5xx is relayed as it is')
  }
  t.equal(await breakerGauge(app, 'sessions'), 2, '5 of 10 failed: open')
  t.equal((await get(app)).statusCode, 503)
})

test('round robin skips an instance whose breaker is open', async (t) => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { app } = await build(t, {
    SESSIONS_URLS: `${a.url},${b.url}`,
    MAX_RETRIES: '1',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '30'
  })
  await a.stop()
  const seen: string[] = []
  for (let i = 0; i < 6; i++) {
    const res = await get(app)
    t.equal(res.statusCode, 200, 'a GET that failed on a is retried on b')
    seen.push(res.json().instance)
  }
  t.same(seen, ['b', 'b', 'b', 'b', 'b', 'b'])
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /gateway_retries_total\{service="sessions",reason="connect"\} 2/)
  t.match(metrics, new RegExp(`gateway_circuit_breaker_state\\{service="sessions",instance="${a.url}"\\} 2`))
  t.match(metrics, new RegExp(`gateway_circuit_breaker_state\\{service="sessions",instance="${b.url}"\\} 0`))
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/health' })).json().services.sessions.status === 'up')
})
