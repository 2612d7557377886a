import t from 'tap'
import { recordedSleep, testClock, testToken } from '@platform/kit/testing'
import type { CleanupKind } from '@platform/contracts'
import { byKind, type Target } from '../src/domain/kinds.js'
import { createServiceClient, type ServiceClient } from '../src/plugins/service-client.js'
import { createSessionStats } from '../src/plugins/session-stats.js'
import { createCleanupHealth } from '../src/plugins/cleanup-health.js'
import { fakeService } from './helper.js'

// The worker's parts without Fastify: the service client against fake services on real ports, the
// stats cache and the health criteria against stand-ins of the parts they read.

const quiet = { debug() {}, info() {}, warn() {} }
const unavailable = { status: 503, body: { error: 'Service Unavailable', message: 'db down', code: 'DATABASE_UNAVAILABLE', requestId: 'x' } }

function client(
  urls: Partial<Record<Target, string>>,
  overrides: { retries?: number; minVolume?: number; sleep?: (ms: number) => Promise<void> } = {}
) {
  const nowhere = 'http://127.0.0.1:1'
  const services = createServiceClient({
    urls: { sessions: nowhere, 'task-sessions': nowhere, chat: nowhere, ...urls },
    token: () => testToken('cleanup-worker', ['service']),
    timeoutMs: 5000,
    retries: overrides.retries ?? 0,
    retryBaseMs: 10,
    retryMaxMs: 40,
    breaker: { errorPercentage: 50, minVolume: overrides.minVolume ?? 100, resetMs: 60_000 },
    sleep: overrides.sleep ?? recordedSleep().sleep,
    log: quiet
  })
  t.teardown(() => services.close())
  return services
}

t.test('service client: retries a 5xx with backoff, sends the token and the body, and answers the JSON', async (t) => {
  const task = await fakeService(t, { 'POST /internal/cleanup': [unavailable, unavailable, unavailable, { status: 200, body: { removed: 1 } }] })
  const { waits, sleep } = recordedSleep()
  const services = client({ 'task-sessions': task.url }, { retries: 3, sleep })
  t.same(await services.call('task-sessions', '/internal/cleanup', { body: { batchSize: 5 } }), { removed: 1 })
  t.same(waits, [10, 20, 40], 'doubling from the base, up to the cap')
  t.same(
    task.calls.map((c) => [c.method, c.path, c.body, c.sub, c.roles]),
    Array(4).fill(['POST', '/internal/cleanup', { batchSize: 5 }, 'cleanup-worker', ['service']])
  )
})

t.test('service client: a 4xx is not retried and names its code; a body that is not JSON is refused', async (t) => {
  const chat = await fakeService(t, {
    'POST /internal/cleanup': { status: 409, body: { code: 'CONFLICT' } },
    'GET /internal/cleanup/stats': { status: 200 }
  })
  const services = client({ chat: chat.url }, { retries: 3 })
  await t.rejects(services.call('chat', '/internal/cleanup'), {
    name: 'UpstreamError',
    message: 'chat answered 409 CONFLICT',
    status: 409,
    retryable: false
  })
  await t.rejects(services.call('chat', '/internal/cleanup/stats', { method: 'GET' }), {
    message: 'chat answered with a body that is not JSON',
    retryable: false
  })
  t.equal(chat.calls.length, 2)
})

t.test('service client: the breaker opens when half the calls fail, and stopRetrying ends a retry loop', async (t) => {
  const sessions = await fakeService(t, { 'POST /internal/cleanup': unavailable })
  const services = client({ sessions: sessions.url }, { minVolume: 2 })
  for (let i = 0; i < 2; i++)
    await t.rejects(services.call('sessions', '/internal/cleanup'), { message: 'sessions answered 503 DATABASE_UNAVAILABLE' })
  t.equal(services.breakerState('sessions'), 'open')
  await t.rejects(services.call('sessions', '/internal/cleanup'), { message: 'sessions is failing: its circuit is open', retryable: true })
  t.equal(sessions.calls.length, 2, 'the open circuit sent nothing')
  t.equal(services.breakerState('chat'), 'closed', 'one breaker per service')

  const task = await fakeService(t, { 'POST /internal/cleanup': unavailable })
  const stopping = client({ 'task-sessions': task.url }, { retries: 5 })
  stopping.stopRetrying()
  await t.rejects(stopping.call('task-sessions', '/internal/cleanup'), { message: 'task-sessions answered 503 DATABASE_UNAVAILABLE' })
  t.equal(task.calls.length, 1, 'no retry once stopping')
})

/** A service client stand-in that answers stats per target and counts the calls. */
function statsClient(answers: Partial<Record<Target, unknown>>, open: Target[] = []) {
  const calls: Target[] = []
  const services: ServiceClient = {
    async call(target) {
      calls.push(target)
      const answer = answers[target]
      if (answer instanceof Error) throw answer
      return answer
    },
    breakerState: (target) => (open.includes(target) ? 'open' : 'closed')
  }
  return { services, calls }
}

const figures = (active: number) => ({ active, expired: 1, averageSessionDurationSeconds: 2 })

t.test('session stats: each kind from its owner, null where the owner failed, is open or broke the contract', async (t) => {
  const { services, calls } = statsClient(
    {
      sessions: { login_sessions: figures(3), named_sessions: { active: -1 } },
      'task-sessions': new Error('down'),
      chat: { chat_sessions: figures(4) }
    },
    ['chat']
  )
  const stats = createSessionStats({ services, timeoutMs: 100, cacheMs: 0, log: quiet })
  t.same(
    await stats.get(),
    { login_sessions: null, task_sessions: null, chat_sessions: null, named_sessions: null },
    'a reply outside the contract counts as none'
  )
  t.same(calls.sort(), ['sessions', 'task-sessions'], 'an open breaker is not asked')

  const good = statsClient({ sessions: { login_sessions: figures(3) }, chat: { chat_sessions: figures(4) } })
  t.same(await createSessionStats({ services: good.services, timeoutMs: 100, cacheMs: 0, log: quiet }).get(), {
    login_sessions: figures(3),
    task_sessions: null,
    chat_sessions: figures(4),
    named_sessions: null
  })
})

t.test('session stats: reused for cacheMs, and callers at once share one round of requests', async (t) => {
  const clock = testClock().freeze(1_000_000)
  const { services, calls } = statsClient({ sessions: { login_sessions: figures(1) } })
  const stats = createSessionStats({ services, timeoutMs: 100, cacheMs: 500, log: quiet, now: clock.now })
  await Promise.all([stats.get(), stats.get()])
  t.equal(calls.length, 3, 'one call per service for both callers')
  clock.advance(499)
  await stats.get()
  t.equal(calls.length, 3, 'still fresh')
  clock.advance(1)
  await stats.get()
  t.equal(calls.length, 6, 'asked again once cacheMs has passed')
})

t.test('health: overdue after two intervals from the start, over the alert, NATS down and Postgres down are each a reason', async (t) => {
  const clock = testClock().freeze(0)
  let nats = true
  let active = 10
  let history: () => Promise<Record<CleanupKind, Date | null>> = async () => byKind(() => null)
  const health = createCleanupHealth({
    schedules: [{ kind: 'task_sessions', intervalMs: 1000 }],
    activeSessionsAlert: 10,
    now: clock.now,
    runHistory: { lastSuccess: () => history() },
    sessionStats: { get: async () => ({ ...byKind(() => null), login_sessions: figures(active) }) },
    natsConnected: () => nats
  })
  const healthy = await health.report()
  t.same([healthy.status, healthy.reasons], ['healthy', []])
  t.same(healthy.kinds.task_sessions, {
    scheduled: true,
    intervalSeconds: 1,
    lastSuccessAt: null,
    overdue: false,
    activeSessions: null,
    overThreshold: false
  })
  t.equal(await health.check('overdue'), 'up')

  clock.advance(2001)
  active = 11
  nats = false
  const degraded = await health.report()
  t.same(degraded.reasons, [
    'NATS is unreachable: run events wait in the outbox',
    'login_sessions: 11 active sessions (alert above 10)',
    'task_sessions: no successful cleanup for two intervals'
  ])
  t.equal(await health.check('overdue'), 'down')
  t.equal(await health.check('overThreshold'), 'down')

  history = async () => ({ ...byKind(() => null), task_sessions: new Date(clock.now() - 500) })
  t.equal(await health.check('overdue'), 'up', 'a recent success is not overdue')
  history = async () => Promise.reject(new Error('connection refused'))
  const noHistory = await health.report()
  t.same(noHistory.reasons.slice(0, 1), ['the run history (Postgres) is unavailable'])
  t.equal(noHistory.kinds.task_sessions?.overdue, false, 'not judged overdue without the history')
})
