import t from 'tap'
import { Redis } from 'ioredis'
import { createEvent } from '@platform/kit'
import { bearer, publishEvents, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'
const BOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'

const service = bearer(testToken('gateway', ['service']))
type App = Awaited<ReturnType<typeof build>>['app']

const resolve = (app: App, sid: string, userId: string, userAgent = CHROME, ip = '10.0.0.1') =>
  app.inject({ method: 'POST', url: '/internal/login-sessions/resolve', headers: service, payload: { sid, userId, ip, userAgent } })

t.test('first sight of a sid starts a login session with its device', async (t) => {
  const { app, schema, config } = await build(t)
  const res = await resolve(app, 'sid-1', 'alice', IPHONE, '203.0.113.7')
  t.equal(res.statusCode, 200)
  t.match(res.json(), { sid: 'sid-1', userId: 'alice', userAgent: IPHONE, ip: '203.0.113.7', endReason: null })
  const { rows } = await schema.query('SELECT device_type, browser, os, ip_address, request_count FROM login_sessions')
  t.same(rows, [{ device_type: 'mobile', browser: 'Mobile Safari 17', os: 'iOS 17.0', ip_address: '203.0.113.7', request_count: 0 }])
  t.equal((await resolve(app, 'sid-1', 'alice', IPHONE)).statusCode, 200, 'resolving again is idempotent')
  const { rows: events } = await schema.query('SELECT type FROM outbox ORDER BY seq')
  t.same(
    events.map((e) => e.type),
    ['sessions.login.started']
  )

  const redis = new Redis(config.REDIS_URL, { keyPrefix: config.REDIS_KEY_PREFIX })
  t.teardown(() => redis.disconnect())
  const state = await redis.hgetall('login:state:sid-1')
  t.match(state, { userId: 'alice', ua: IPHONE, ip: '203.0.113.7', ended: '' })

  await resolve(app, 'sid-bot', 'crawler', BOT)
  await resolve(app, 'sid-desk', 'desk', CHROME)
  await resolve(app, 'sid-none', 'none', '')
  const { rows: devices } = await schema.query(`SELECT id, device_type FROM login_sessions WHERE id <> 'sid-1' ORDER BY id`)
  t.same(devices, [
    { id: 'sid-bot', device_type: 'bot' },
    { id: 'sid-desk', device_type: 'desktop' },
    { id: 'sid-none', device_type: 'unknown' }
  ])
})

t.test('the 6th session ends the oldest (end_oldest, the default)', async (t) => {
  const { app, schema } = await build(t)
  for (let i = 1; i <= 6; i++) t.equal((await resolve(app, `s${i}`, 'bob')).statusCode, 200)
  const { rows } = await schema.query(`SELECT id, end_reason FROM login_sessions ORDER BY created_at, id`)
  t.same(
    rows.map((r) => [r.id, r.end_reason]),
    [
      ['s1', 'limit'],
      ['s2', null],
      ['s3', null],
      ['s4', null],
      ['s5', null],
      ['s6', null]
    ]
  )
  const again = await resolve(app, 's1', 'bob')
  t.equal(again.json().endReason, 'limit', 'the ended sid stays ended')
})

t.test('the 6th session is refused with deny_new', async (t) => {
  const { app, schema } = await build(t, { LOGIN_SESSION_OVERFLOW: 'deny_new' })
  for (let i = 1; i <= 5; i++) await resolve(app, `s${i}`, 'carol')
  const denied = await resolve(app, 's6', 'carol')
  t.equal(denied.statusCode, 429)
  t.match(denied.json(), {
    error: 'Too many active sessions',
    message: 'You have too many active sessions. Please try again.',
    code: 'CONCURRENT_SESSION_LIMIT'
  })
  const { rows } = await schema.query(`SELECT count(*)::int AS n FROM login_sessions WHERE ended_at IS NULL`)
  t.equal(rows[0]!.n, 5)
})

t.test('inactivity and max age end a session at its next use', async (t) => {
  const { app, schema } = await build(t, { SESSION_INACTIVITY_TIMEOUT: '60', LOGIN_SESSION_MAX_AGE: '3600' })
  await resolve(app, 'idle', 'dan')
  await resolve(app, 'old', 'dan')
  await schema.query(`UPDATE login_sessions SET last_seen_at = now() - interval '61 seconds' WHERE id = 'idle'`)
  await schema.query(`UPDATE login_sessions SET created_at = now() - interval '2 hours' WHERE id = 'old'`)
  t.equal((await resolve(app, 'idle', 'dan')).json().endReason, 'inactive')
  t.equal((await resolve(app, 'old', 'dan')).json().endReason, 'expired')
  const { rows } = await schema.query(
    `SELECT type, envelope->'data'->>'reason' AS reason FROM outbox WHERE type = 'sessions.login.ended' ORDER BY seq`
  )
  t.same(rows, [
    { type: 'sessions.login.ended', reason: 'inactive' },
    { type: 'sessions.login.ended', reason: 'expired' }
  ])
})

t.test('ending with a violation records it, emits both events and marks the hot state', async (t) => {
  const { app, schema, config } = await build(t)
  await resolve(app, 'v1', 'erin')
  const res = await app.inject({
    method: 'POST',
    url: '/internal/login-sessions/v1/end',
    headers: service,
    payload: { reason: 'security', violation: 'user_agent_changed', detail: 'user agent changed' }
  })
  t.equal(res.statusCode, 200)
  t.equal(res.json().endReason, 'security')
  const { rows } = await schema.query('SELECT type FROM outbox ORDER BY seq')
  t.same(
    rows.map((r) => r.type),
    ['sessions.login.started', 'sessions.login.violation', 'sessions.login.ended']
  )
  const redis = new Redis(config.REDIS_URL, { keyPrefix: config.REDIS_KEY_PREFIX })
  t.teardown(() => redis.disconnect())
  t.equal(await redis.hget('login:state:v1', 'ended'), 'security')
  const missing = await app.inject({ method: 'POST', url: '/internal/login-sessions/nope/end', headers: service, payload: { reason: 'revoked' } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'LOGIN_SESSION_NOT_FOUND')
})

t.test('my device list, revoke one, revoke others, log out', async (t) => {
  const { app, schema } = await build(t)
  for (const sid of ['a', 'b', 'c']) await resolve(app, sid, 'frank')
  await resolve(app, 'x', 'grace')
  const me = bearer(testToken('frank', ['user'], { sid: 'b' }))

  const list = (await app.inject({ method: 'GET', url: '/api/v1/login-sessions', headers: me })).json()
  t.same(
    list.items.map((s: { id: string; current: boolean }) => [s.id, s.current]),
    [
      ['c', false],
      ['b', true],
      ['a', false]
    ]
  )
  t.equal(list.items[0].deviceType, 'desktop')

  const other = await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/x', headers: me })
  t.equal(other.statusCode, 404, "another user's session is not mine to revoke")
  t.equal(other.json().code, 'LOGIN_SESSION_NOT_FOUND')
  t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions/a', headers: me })).statusCode, 204)

  const noFlag = await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions', headers: me })
  t.equal(noFlag.statusCode, 400)
  t.equal(noFlag.json().code, 'OTHERS_REQUIRED')
  const others = await app.inject({ method: 'DELETE', url: '/api/v1/login-sessions?others=true', headers: me })
  t.same(others.json(), { ended: 1 })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/login-sessions/logout', headers: me })).statusCode, 204)

  const { rows } = await schema.query(`SELECT id, end_reason FROM login_sessions ORDER BY id`)
  t.same(rows, [
    { id: 'a', end_reason: 'revoked' },
    { id: 'b', end_reason: 'logout' },
    { id: 'c', end_reason: 'revoked' },
    { id: 'x', end_reason: null }
  ])
  const ended = (await app.inject({ method: 'GET', url: '/api/v1/login-sessions?state=ended', headers: me })).json()
  t.equal(ended.items.length, 3)
  const active = (await app.inject({ method: 'GET', url: '/api/v1/login-sessions', headers: me })).json()
  t.same(active.items, [])

  const noSid = await app.inject({ method: 'POST', url: '/api/v1/login-sessions/logout', headers: bearer(testToken('frank')) })
  t.equal(noSid.statusCode, 401)
  t.equal(noSid.json().code, 'SESSION_REQUIRED')
  const grace = bearer(testToken('grace'))
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/login-sessions?userId=frank', headers: grace })).statusCode, 403)
  const admin = bearer(testToken('root', ['admin']))
  const seen = (await app.inject({ method: 'GET', url: '/api/v1/login-sessions?userId=grace', headers: admin })).json()
  t.same(
    seen.items.map((s: { id: string }) => s.id),
    ['x']
  )
})

t.test('activity batches update last seen, request counts and IP changes in one write', async (t) => {
  const { app, schema } = await build(t)
  await resolve(app, 'm1', 'heidi', IPHONE, '10.0.0.1')
  await resolve(app, 'm2', 'heidi', IPHONE, '10.0.0.2')
  const at = Date.now() + 5000
  const res = await app.inject({
    method: 'POST',
    url: '/internal/login-sessions/activity',
    headers: service,
    payload: {
      items: [
        { sid: 'm1', lastSeenAt: at, requests: 40, ip: '10.9.9.9' },
        { sid: 'm2', lastSeenAt: at, requests: 2 },
        { sid: 'ghost', lastSeenAt: at, requests: 1 }
      ]
    }
  })
  t.same(res.json(), { updated: 2 })
  const { rows } = await schema.query(
    `SELECT id, request_count, ip_address, last_ip_address, ip_changes, (extract(epoch from last_seen_at) * 1000)::bigint AS seen FROM login_sessions ORDER BY id`
  )
  t.same(rows, [
    { id: 'm1', request_count: 40, ip_address: '10.0.0.1', last_ip_address: '10.9.9.9', ip_changes: 1, seen: String(at) },
    { id: 'm2', request_count: 2, ip_address: '10.0.0.2', last_ip_address: '10.0.0.2', ip_changes: 0, seen: String(at) }
  ])
})

t.test('cleanup ends inactive, expired and orphaned sessions in batches, each with its event', async (t) => {
  const { app, schema } = await build(t, { SESSION_INACTIVITY_TIMEOUT: '600', LOGIN_SESSION_MAX_AGE: '129600' })
  for (let i = 0; i < 7; i++) await resolve(app, `idle${i}`, `u${i}`)
  await resolve(app, 'old', 'u-old')
  await resolve(app, 'orphan', 'u-orphan')
  await resolve(app, 'fresh', 'u-fresh')
  await schema.query(`UPDATE login_sessions SET last_seen_at = now() - interval '20 minutes', request_count = 5 WHERE id LIKE 'idle%'`)
  await schema.query(`UPDATE login_sessions SET created_at = now() - interval '2 days', last_seen_at = now(), request_count = 9 WHERE id = 'old'`)
  await schema.query(
    `UPDATE login_sessions SET created_at = now() - interval '25 hours', last_seen_at = now() - interval '25 hours' WHERE id = 'orphan'`
  )
  const res = await app.inject({ method: 'POST', url: '/internal/cleanup', headers: service, payload: { batchSize: 3 } })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { removed: 9, batches: 3, errors: 0 })
  const { rows } = await schema.query(`SELECT end_reason, count(*)::int AS n FROM login_sessions GROUP BY end_reason ORDER BY end_reason NULLS LAST`)
  t.same(rows, [
    { end_reason: 'expired', n: 1 },
    { end_reason: 'inactive', n: 8 },
    { end_reason: null, n: 1 }
  ])
  const { rows: ev } = await schema.query(`SELECT count(*)::int AS n FROM outbox WHERE type = 'sessions.login.ended'`)
  t.equal(ev[0]!.n, 9)
  const user = await app.inject({ method: 'POST', url: '/internal/cleanup', headers: bearer(testToken('u1')), payload: {} })
  t.equal(user.statusCode, 403, 'internal routes need the service role')
})

t.test('metrics for admins', async (t) => {
  const { app, schema } = await build(t)
  await resolve(app, 'a', 'ivan')
  await resolve(app, 'b', 'ivan')
  await app.inject({
    method: 'POST',
    url: '/internal/login-sessions/a/end',
    headers: service,
    payload: { reason: 'security', violation: 'request_rate', detail: '101 requests in a minute' }
  })
  await schema.query(
    `UPDATE login_sessions SET created_at = ended_at - interval '30 seconds', request_count = 10, chat_interactions = 4 WHERE id = 'a'`
  )
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/login-sessions/metrics', headers: bearer(testToken('ivan')) })).statusCode, 403)
  const m = (await app.inject({ method: 'GET', url: '/api/v1/login-sessions/metrics', headers: bearer(testToken('root', ['admin'])) })).json()
  t.same(m, {
    active: 1,
    started: 2,
    endedByReason: { security: 1 },
    violationsByReason: { request_rate: 1 },
    averageDurationSeconds: 30,
    averageRequestsPerSession: 5,
    averageChatInteractionsPerSession: 2
  })
  await waitFor(async () => (await schema.query('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL')).rows[0]!.n === 0)
})

t.test('chat interactions are counted from chat.events.message.created, once per event, user messages only', async (t) => {
  const { app, schema, config } = await build(t)
  await resolve(app, 'chatty', 'judy')
  const message = (sender: 'user' | 'assistant', loginSessionId?: string) =>
    createEvent('chat.events.message.created', '/chat', {
      chatSessionId: '0b6c7c7e-4b0e-4a52-9d8e-1f9a1c2b3d4e',
      messageId: '1',
      seq: 1,
      sender,
      userId: 'judy',
      userType: 'client',
      ...(loginSessionId ? { loginSessionId } : {}),
      contentLength: 5,
      createdAt: new Date().toISOString()
    })
  const first = message('user', 'chatty')
  await waitFor(() => app.chatInteractions.running)
  await publishEvents(
    config.NATS_URL,
    config.NATS_NAMESPACE,
    [
      first,
      { ...first }, // a redelivered copy
      message('assistant', 'chatty'),
      message('user'),
      message('user', 'chatty')
    ].map((payload) => ({ subject: 'chat.events.message.created', payload }))
  )
  await waitFor(async () => app.chatInteractions.stats.processed >= 5, 10_000)
  const { rows } = await schema.query(`SELECT chat_interactions FROM login_sessions WHERE id = 'chatty'`)
  t.equal(rows[0]!.chat_interactions, 2)
})
