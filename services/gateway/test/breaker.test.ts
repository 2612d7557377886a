import { test } from 'tap'
import { bearer, testClock, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'
import { startFrozenUpstream, startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))
const get = (app: Awaited<ReturnType<typeof build>>['app'], url = '/api/v1/sessions') => app.inject({ method: 'GET', url, headers: user })

const breakerGauge = async (app: Awaited<ReturnType<typeof build>>['app'], service: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`gateway_circuit_breaker_state{service="${service}"`))
  return line ? Number(line.split(' ').pop()) : NaN
}

/** How often a service's breakers moved to each state: counters only grow, so no timer can race them. */
const transitions = async (app: Awaited<ReturnType<typeof build>>['app'], service: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const count = (to: string) => {
    const line = text
      .split('\n')
      .find((l) => l.startsWith('gateway_circuit_breaker_transitions_total{') && l.includes(`service="${service}"`) && l.includes(`to="${to}"`))
    return line ? Number(line.split(' ').pop()) : 0
  }
  return { open: count('open'), half_open: count('half_open'), closed: count('closed') }
}

/** Half-open comes from the breaker's own timer after the recovery timeout: wait for it, however busy the machine. */
const halfOpen = (app: Awaited<ReturnType<typeof build>>['app'], service: string) =>
  waitFor(async () => (await breakerGauge(app, service)) === 1, 20_000)

test('a stopped upstream: 502s, the breaker opens at the threshold, then 503s without calling it', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const chat = await startUpstream(t, 'chat')
  // A recovery timeout no test run reaches, and a stopped clock: Retry-After is exact.
  const clock = testClock().freeze()
  const env = {
    SESSIONS_URLS: sessions.url,
    CHAT_URLS: chat.url,
    MAX_RETRIES: '0',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '5',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '30'
  }
  const { app } = await build(t, env, { now: clock.now })
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
  for (let i = 0; i < 20; i++) {
    const res = await get(app)
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'CIRCUIT_OPEN')
    t.equal(res.json().retryAfter, 30)
    t.equal(res.headers['retry-after'], '30')
    t.equal(res.headers['x-degradation-mode'], 'sessions_unavailable')
  }
  clock.advance(12_500)
  t.equal((await get(app)).json().retryAfter, 18, 'Retry-After counts down to the probe (17.5 s, rounded up)')
  t.equal(sessions.hits.length, 1, 'open answers come at once: nothing reached the upstream while open')

  const other = await get(app, '/api/v1/chat/sessions')
  t.equal(other.statusCode, 200, 'other upstreams are unaffected')

  const health = (await app.inject({ method: 'GET', url: '/health' })).json()
  t.equal(health.status, 'unhealthy', 'task-sessions and cleanup-worker are not started here')
  t.ok(health.reasons.includes(`sessions: ${sessions.url} has its breaker open`), 'the open breaker is named')
  t.equal(health.services.sessions.breaker, 'open')
  t.equal(health.services.chat.breaker, 'closed')
  t.same(await transitions(app, 'sessions'), { open: 1, half_open: 0, closed: 0 })
})

test('after the recovery timeout one probe goes through, and its success closes the breaker', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    MAX_RETRIES: '0',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '0.2'
  })
  t.equal((await get(app)).statusCode, 200)
  await sessions.stop()
  t.equal((await get(app)).statusCode, 502)
  t.equal((await get(app)).statusCode, 502)
  await sessions.start()
  await halfOpen(app, 'sessions')
  t.same(await transitions(app, 'sessions'), { open: 1, half_open: 1, closed: 0 }, 'half-open after the recovery timeout')
  const probe = await get(app)
  t.equal(probe.statusCode, 200, 'the half-open probe succeeds')
  t.equal(await breakerGauge(app, 'sessions'), 0, 'and closes the breaker')
  for (let i = 0; i < 3; i++) t.equal((await get(app)).statusCode, 200)
  t.equal(sessions.hits.length, 5, 'the first request, the probe and three more')
  t.same(await transitions(app, 'sessions'), { open: 1, half_open: 1, closed: 1 })
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
  await halfOpen(app, 'sessions')
  t.equal((await get(app)).statusCode, 502, 'the probe goes through and fails')
  // The probe's failure opens it again before its answer is sent; the next half-open may follow on its own.
  t.match(await transitions(app, 'sessions'), { open: 2, closed: 0 }, 'open again at once, never closed')
})

test('a frozen upstream: 504 UPSTREAM_TIMEOUT within the deadline first, then 503 CIRCUIT_OPEN without waiting', async (t) => {
  const frozen = await startFrozenUpstream(t)
  const { app } = await build(t, {
    SESSIONS_URLS: frozen.url,
    UPSTREAM_TIMEOUT_MS: '300',
    REQUEST_DEADLINE_MS: '300',
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '3',
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: '10'
  })
  const codes: string[] = []
  const started = Date.now() // the breaker opens after this: Retry-After counts down from 10 s since then at most
  for (let i = 0; i < 3; i++) {
    const res = await get(app)
    codes.push(`${res.statusCode} ${res.json().code}`)
    if (i === 0) {
      t.same(res.json(), {
        error: 'Gateway Timeout',
        message: 'The sessions service did not answer in time; retry later',
        code: 'UPSTREAM_TIMEOUT',
        requestId: res.headers['x-request-id']
      })
      t.equal(res.headers['x-degradation-mode'], undefined, 'a timeout is an error, not a degraded answer')
    }
  }
  t.same(codes, ['504 UPSTREAM_TIMEOUT', '504 UPSTREAM_TIMEOUT', '504 UPSTREAM_TIMEOUT'], 'one attempt each: the deadline leaves no room for a retry')
  const reached = frozen.connections()
  for (let i = 0; i < 3; i++) {
    const open = await get(app)
    t.equal(open.statusCode, 503)
    t.equal(open.json().code, 'CIRCUIT_OPEN')
    const least = Math.ceil((10_000 - (Date.now() - started)) / 1000)
    const retryAfter = Number(open.headers['retry-after'])
    t.ok(retryAfter >= least && retryAfter <= 10, `Retry-After ${retryAfter}: what is left of the 10 s recovery (at least ${least})`)
    t.equal(open.headers['x-degradation-mode'], 'sessions_unavailable')
    t.equal(open.headers['x-degradation-reason'], 'sessions service unavailable: circuit open')
  }
  t.equal(frozen.connections(), reached, 'nothing waits on the frozen upstream once the breaker is open')
})

test('the cleanup prefix keeps its own, longer deadline; everything else answers within REQUEST_DEADLINE_MS', async (t) => {
  const frozen = await startFrozenUpstream(t)
  const { app } = await build(t, {
    SESSIONS_URLS: frozen.url,
    CLEANUP_WORKER_URLS: frozen.url,
    MAX_RETRIES: '0',
    UPSTREAM_TIMEOUT_MS: '200',
    REQUEST_DEADLINE_MS: '200'
  })
  const admin = bearer(testToken('a1', ['admin']))
  const cleanup = app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs', headers: admin }).then(() => 'cleanup')
  const sessions = get(app).then((res) => `sessions ${res.statusCode}`)
  t.equal(await Promise.race([cleanup, sessions]), 'sessions 504', 'the sessions call gives up first; the cleanup call is still waiting')
  // Closing the app at teardown ends the cleanup call, which would wait 30 s.
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
    // A window no run outlasts: all ten calls count, however slow the machine.
    CIRCUIT_BREAKER_WINDOW_SECONDS: '600'
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
