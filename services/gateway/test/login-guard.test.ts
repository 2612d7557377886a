import t, { type Test } from 'tap'
import type { LightMyRequestResponse as LightResponse } from 'fastify'
import { join } from 'node:path'
import {
  TEST_JWT_SECRET,
  bearer,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  startRedisServer,
  startServiceProcess,
  testClock,
  testToken,
  uniqueName,
  waitFor,
  type ServiceProcess,
  type TestClock,
  type TestSchema
} from '@platform/kit/testing'
import { build } from './helper.js'

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
const OTHER_UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15'
const migrations = join(import.meta.dirname, '..', '..', 'sessions', 'prisma', 'migrations')

interface Stack {
  sessions: ServiceProcess
  schema: TestSchema
  prefix: string
  redisUrl: string
}

/** The real sessions service as its own process, sharing a Redis key prefix with the gateways under test. */
async function startStack(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}): Promise<Stack> {
  const schema = await createTestSchema(migrations, 'guard')
  const ns = uniqueName('lg')
  const prefix = `${ns}:`
  const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const sessions = await startServiceProcess('sessions', {
    DATABASE_URL: schema.url,
    DATABASE_SCHEMA: schema.schema,
    DATABASE_POOL_SIZE: '3',
    REDIS_KEY_PREFIX: prefix,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET,
    OUTBOX_POLL_MS: '100',
    ...env
  })
  t.teardown(async () => {
    await sessions.stop()
    await schema.drop()
    // Best effort: keys and streams under the test's own prefix and namespace never meet another test's; a leftover is no failure.
    await deleteRedisKeys(redisUrl, prefix).catch(() => {})
    await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => {})
  })
  return { sessions, schema, prefix, redisUrl }
}

/** A gateway in front of the stack; `clock` is its time, which the test moves instead of sleeping. */
const gateway = (t: { teardown(fn: () => unknown): void }, stack: Stack, env: Record<string, string> = {}, clock?: TestClock) =>
  build(
    t,
    {
      SESSIONS_URLS: stack.sessions.url,
      REDIS_KEY_PREFIX: stack.prefix,
      REDIS_URL: stack.redisUrl,
      TRUSTED_PROXIES: '127.0.0.1',
      LOGIN_ACTIVITY_FLUSH_SECONDS: '1',
      RATE_LIMIT_AUTHENTICATED: '100000',
      // The sessions service is a real process: a busy machine may take seconds to answer, never a failure here.
      UPSTREAM_TIMEOUT_MS: '10000',
      LOGIN_GUARD_TIMEOUT_MS: '10000',
      ...env
    },
    clock ? { now: clock.now } : {}
  )

const as = (sub: string, sid?: string, ua = UA, ip = '198.51.100.1', roles = ['user']) => ({
  ...bearer(testToken(sub, roles, sid ? { sid } : {})),
  'user-agent': ua,
  'x-forwarded-for': ip
})

// One sessions process (with default settings) serves the first two tests: each start costs seconds on a busy machine.
let shared: Stack
t.before(async () => {
  shared = await startStack(t)
})

/** What each case of the first test shares: one gateway (with its clock) in front of the shared stack. */
interface GuardCase {
  stack: Stack
  app: Awaited<ReturnType<typeof build>>['app']
  clock: TestClock
  get: (headers: Record<string, string>, url?: string) => Promise<LightResponse>
}

const guardCases: Array<[string, (t: Test, c: GuardCase) => Promise<void>]> = [
  [
    'first sight of a sid starts a login session; replies carry X-Session-Id',
    async (t, { get }) => {
      const res = await get(as('alice', 'a-1'))
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-session-id'], 'a-1')
      const list = (await get(as('alice', 'a-1'), '/api/v1/login-sessions')).json()
      t.same(
        list.items.map((s: { id: string; current: boolean; deviceType: string }) => [s.id, s.current, s.deviceType]),
        [['a-1', true, 'desktop']]
      )
      const noSid = await get(as('alice'))
      t.equal(noSid.statusCode, 200, 'a token without sid passes while LOGIN_SESSION_REQUIRED=false')
      t.equal(noSid.headers['x-session-id'], undefined)
    }
  ],
  [
    'end_oldest: the 6th session ends the oldest, whose next request is refused',
    async (t, { get }) => {
      for (let i = 1; i <= 6; i++) t.equal((await get(as('bob', `b-${i}`))).statusCode, 200)
      const oldest = await get(as('bob', 'b-1'))
      t.equal(oldest.statusCode, 401)
      t.equal(oldest.json().code, 'SESSION_ENDED')
      t.equal(oldest.json().message, 'Your session has ended (limit). Please log in again.')
      t.equal((await get(as('bob', 'b-6'))).statusCode, 200)
    }
  ],
  [
    'a changed user agent ends the session with 403, and it stays ended',
    async (t, { stack, get }) => {
      t.equal((await get(as('carol', 'c-1'))).statusCode, 200)
      const res = await get(as('carol', 'c-1', OTHER_UA))
      t.equal(res.statusCode, 403)
      t.same(Object.fromEntries(Object.entries(res.json()).filter(([k]) => k !== 'requestId')), {
        error: 'Security violation detected',
        message: 'Your session has been terminated due to security concerns. Please log in again.',
        code: 'SECURITY_VIOLATION'
      })
      const after = await get(as('carol', 'c-1'))
      t.equal(after.statusCode, 401)
      t.equal(after.json().code, 'SESSION_ENDED')
      const { rows } = await stack.schema.query(`SELECT end_reason FROM login_sessions WHERE id = 'c-1'`)
      t.same(rows, [{ end_reason: 'security' }])
      const { rows: v } = await stack.schema.query(`SELECT reason FROM login_violations WHERE session_id = 'c-1'`)
      t.same(v, [{ reason: 'user_agent_changed' }])
    }
  ],
  [
    'a changed IP is allowed and recorded',
    async (t, { stack, get }) => {
      t.equal((await get(as('dave', 'd-1', UA, '198.51.100.1'))).statusCode, 200)
      t.equal((await get(as('dave', 'd-1', UA, '203.0.113.9'))).statusCode, 200)
      await waitFor(async () => {
        const { rows } = await stack.schema.query(`SELECT ip_address, last_ip_address, ip_changes FROM login_sessions WHERE id = 'd-1'`)
        return rows[0]?.ip_changes === 1 ? rows[0] : null
      }, 20_000)
      const { rows } = await stack.schema.query(`SELECT ip_address, last_ip_address, ip_changes FROM login_sessions WHERE id = 'd-1'`)
      t.same(rows, [{ ip_address: '198.51.100.1', last_ip_address: '203.0.113.9', ip_changes: 1 }])
    }
  ],
  [
    'more requests per minute than SUSPICIOUS_REQUEST_RATE is a violation',
    async (t, { stack, get }) => {
      for (let i = 0; i < 8; i++) t.equal((await get(as('erin', 'e-1'))).statusCode, 200)
      const ninth = await get(as('erin', 'e-1'))
      t.equal(ninth.statusCode, 403)
      t.equal(ninth.json().code, 'SECURITY_VIOLATION')
      const { rows } = await stack.schema.query(`SELECT reason, detail FROM login_violations WHERE session_id = 'e-1'`)
      t.same(rows, [{ reason: 'request_rate', detail: '9 requests within a minute (limit 8)' }])
    }
  ],
  [
    'revoke one, revoke others, log out; another user can neither see nor revoke mine',
    async (t, { app, get }) => {
      for (const sid of ['f-1', 'f-2', 'f-3']) await get(as('frank', sid))
      await get(as('grace', 'g-1'))
      const grace = as('grace', 'g-1')
      t.same(
        (await get(grace, '/api/v1/login-sessions')).json().items.map((s: { id: string }) => s.id),
        ['g-1']
      )
      const steal = await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/f-1', headers: grace })
      t.equal(steal.statusCode, 404)
      t.equal(steal.json().code, 'LOGIN_SESSION_NOT_FOUND')

      t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/f-1', headers: as('frank', 'f-3') })).statusCode, 204)
      t.equal((await get(as('frank', 'f-1'))).json().code, 'SESSION_ENDED')
      t.same((await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions?others=true', headers: as('frank', 'f-3') })).json(), { ended: 1 })
      t.equal((await get(as('frank', 'f-2'))).json().code, 'SESSION_ENDED')
      t.equal((await app.inject({ method: 'POST', url: '/api/v1/login-sessions/logout', headers: as('frank', 'f-3') })).statusCode, 204)
      t.equal((await get(as('frank', 'f-3'))).json().code, 'SESSION_ENDED')
    }
  ],
  [
    'a revocation is seen by a second gateway replica within 0.6 s',
    async (t, { stack, app, clock, get }) => {
      const { app: second } = await gateway(t, stack, { SUSPICIOUS_REQUEST_RATE: '8' }, clock)
      t.equal((await get(as('heidi', 'h-1'))).statusCode, 200)
      t.equal((await second.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('heidi', 'h-1') })).statusCode, 200)
      await get(as('heidi', 'h-2'))
      t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/h-1', headers: as('heidi', 'h-2') })).statusCode, 204)
      // The second replica may decide on what Redis last told it for 0.5 s, plus a 0.1 s batch: 0.6 s on.
      clock.advance(600)
      const refused = await second.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('heidi', 'h-1') })
      t.equal(refused.statusCode, 401, 'refused by the other replica at its first request 0.6 s later')
      t.equal(refused.json().code, 'SESSION_ENDED')
    }
  ]
]

t.test('the login-session guard through the real gateway and sessions service', async (t) => {
  const clock = testClock()
  const { app } = await gateway(t, shared, { SUSPICIOUS_REQUEST_RATE: '8' }, clock)
  const get = (headers: Record<string, string>, url = '/api/v1/sessions') => app.inject({ method: 'GET', url, headers })
  for (const [name, run] of guardCases) await t.test(name, (t) => run(t, { stack: shared, app, clock, get }))
})

t.test('inactivity and max age end a session at its next use', async (t) => {
  const stack = shared
  // Each gateway's clock runs with real time and jumps when the test moves it: minutes, never a sleep.
  const idleClock = testClock()
  const oldClock = testClock()
  const idle = await gateway(t, stack, { SESSION_INACTIVITY_TIMEOUT: '600' }, idleClock)
  const old = await gateway(t, stack, { LOGIN_SESSION_MAX_AGE: '600' }, oldClock)
  const ivan = () => idle.app.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('ivan', 'i-1') })
  const judy = () => old.app.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('judy', 'j-1') })
  t.equal((await ivan()).statusCode, 200)
  t.equal((await judy()).statusCode, 200)

  idleClock.advance(500_000)
  oldClock.advance(500_000)
  t.equal((await ivan()).statusCode, 200, 'idle 500 s of 600: still open, and active again')
  t.equal((await judy()).statusCode, 200, '500 s old of 600: still open')

  idleClock.advance(601_000)
  oldClock.advance(101_000)
  const a = await ivan()
  t.equal(a.statusCode, 401)
  t.equal(a.json().message, 'Your session has ended (inactive). Please log in again.')
  const b = await judy()
  t.equal(b.statusCode, 401, 'past its maximum age although it was used 101 s ago')
  t.equal(b.json().message, 'Your session has ended (expired). Please log in again.')
  const { rows } = await stack.schema.query(`SELECT id, end_reason FROM login_sessions WHERE id IN ('i-1', 'j-1') ORDER BY id`)
  t.same(rows, [
    { id: 'i-1', end_reason: 'inactive' },
    { id: 'j-1', end_reason: 'expired' }
  ])
})

t.test('deny_new refuses the 6th session; LOGIN_SESSION_REQUIRED refuses tokens without sid', async (t) => {
  const stack = await startStack(t, { LOGIN_SESSION_OVERFLOW: 'deny_new' })
  const { app } = await gateway(t, stack, { LOGIN_SESSION_REQUIRED: 'true' })
  for (let i = 1; i <= 5; i++) t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('kim', `k-${i}`) })).statusCode, 200)
  const sixth = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('kim', 'k-6') })
  t.equal(sixth.statusCode, 429)
  t.same(Object.fromEntries(Object.entries(sixth.json()).filter(([k]) => k !== 'requestId')), {
    error: 'Too many active sessions',
    message: 'You have too many active sessions. Please try again.',
    code: 'CONCURRENT_SESSION_LIMIT'
  })
  const noSid = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: as('kim') })
  t.equal(noSid.statusCode, 401)
  t.equal(noSid.json().code, 'SESSION_REQUIRED')
})

t.test('with Redis stopped the guard asks the sessions service and still enforces every rule', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const stack = await startStack(t, { REDIS_URL: redis.url })
  const { app } = await gateway(t, stack, { SUSPICIOUS_REQUEST_RATE: '5' })
  const get = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/api/v1/sessions', headers })
  t.equal((await get(as('leo', 'l-1'))).statusCode, 200)
  await redis.stop()
  t.equal((await get(as('leo', 'l-1'))).statusCode, 200, 'a known session still passes')
  t.equal((await get(as('leo', 'l-2'))).statusCode, 200, 'a new one still starts')
  const ua = await get(as('leo', 'l-2', OTHER_UA))
  t.equal(ua.statusCode, 403)
  t.equal(ua.json().code, 'SECURITY_VIOLATION')
  t.equal((await get(as('leo', 'l-2'))).json().code, 'SESSION_ENDED')
  await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/l-1', headers: as('leo', 'l-3') })
  t.equal((await get(as('leo', 'l-1'))).json().code, 'SESSION_ENDED', 'a revocation is enforced without Redis')
  for (let i = 0; i < 4; i++) await get(as('leo', 'l-4'))
  t.equal((await get(as('leo', 'l-4'))).statusCode, 200)
  t.equal((await get(as('leo', 'l-4'))).json().code, 'SECURITY_VIOLATION', 'request rates are counted per instance')
  await redis.start()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/health' })).json().redis === 'up', 10_000)
  t.equal((await get(as('leo', 'l-1'))).json().code, 'SESSION_ENDED', 'still ended once Redis is back')
})
