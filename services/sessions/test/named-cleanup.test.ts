import t from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'

const service = bearer(testToken('cleanup-worker', ['service']))

t.test('named-session cleanup removes old inactive sessions in batches and never an active one', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('u1'))
  for (let i = 0; i < 6; i++) await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `s${i}` } })
  await schema.query(`UPDATE named_sessions SET updated_at = now() - interval '10 days' WHERE title IN ('s0', 's1', 's2', 's3', 's5')`)

  const res = await app.inject({
    method: 'POST',
    url: '/internal/cleanup/named-sessions',
    headers: service,
    payload: { olderThanSeconds: 7 * 86400, batchSize: 2 }
  })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { removed: 4, batches: 2, errors: 0 })
  const { rows } = await schema.query('SELECT title, active FROM named_sessions ORDER BY title')
  t.same(
    rows,
    [
      { title: 's4', active: false },
      { title: 's5', active: true }
    ],
    'recent and active sessions stay'
  )
  const { rows: events } = await schema.query(
    `SELECT envelope->'data'->>'title' AS title FROM outbox WHERE type = 'sessions.named.deleted' ORDER BY title`
  )
  t.same(
    events.map((e) => e.title),
    ['s0', 's1', 's2', 's3']
  )
})

t.test('named-session cleanup is off unless an age is configured or passed', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/internal/cleanup/named-sessions', headers: service, payload: {} })
  t.same(res.json(), { removed: 0, batches: 0, errors: 0, durationMs: 0 })
  const user = await app.inject({ method: 'POST', url: '/internal/cleanup/named-sessions', headers: bearer(testToken('u1')), payload: {} })
  t.equal(user.statusCode, 403)
  t.equal(user.json().code, 'FORBIDDEN')
})

t.test('cleanup stats report each kind the sessions service owns', async (t) => {
  const { app, schema } = await build(t, { NAMED_SESSION_MAX_AGE_DAYS: '7', SESSION_INACTIVITY_TIMEOUT: '600' })
  const h = bearer(testToken('u1'))
  for (const title of ['a', 'b', 'c']) await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title } })
  await schema.query(`UPDATE named_sessions SET created_at = now() - interval '20 days', updated_at = now() - interval '10 days' WHERE title = 'a'`)
  for (const sid of ['l1', 'l2']) {
    await app.inject({
      method: 'POST',
      url: '/internal/login-sessions/resolve',
      headers: service,
      payload: { sid, userId: 'u1', ip: '10.0.0.1', userAgent: 'x' }
    })
  }
  await schema.query(`UPDATE login_sessions SET last_seen_at = now() - interval '1 hour' WHERE id = 'l1'`)
  const res = await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: service })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    login_sessions: { active: 2, expired: 1, averageSessionDurationSeconds: 0 },
    named_sessions: { active: 3, expired: 1, averageSessionDurationSeconds: 432000 }
  })
})
