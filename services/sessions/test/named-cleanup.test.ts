import t from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'

const service = bearer(testToken('cleanup-worker', ['service']))

t.test('named-session cleanup removes old inactive sessions in batches and never an active one', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('u1'))
  for (let i = 0; i < 6; i++) await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `s${i}` } })
  await schema.query(`UPDATE named_sessions SET updated_at = now() - interval '10 days' WHERE title IN ('s0', 's1', 's2', 's3', 's5')`)

  const res = await app.inject({ method: 'POST', url: '/internal/cleanup/named-sessions', headers: service, payload: { olderThanSeconds: 7 * 86400, batchSize: 2 } })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { removed: 4, batches: 2, errors: 0 })
  const { rows } = await schema.query('SELECT title, active FROM named_sessions ORDER BY title')
  t.same(rows, [{ title: 's4', active: false }, { title: 's5', active: true }], 'recent and active sessions stay')
  const { rows: events } = await schema.query(`SELECT envelope->'data'->>'title' AS title FROM outbox WHERE type = 'sessions.named.deleted' ORDER BY title`)
  t.same(events.map((e) => e.title), ['s0', 's1', 's2', 's3'])
})

t.test('named-session cleanup is off unless an age is configured or passed', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/internal/cleanup/named-sessions', headers: service, payload: {} })
  t.same(res.json(), { removed: 0, batches: 0, errors: 0, durationMs: 0 })
  const user = await app.inject({ method: 'POST', url: '/internal/cleanup/named-sessions', headers: bearer(testToken('u1')), payload: {} })
  t.equal(user.statusCode, 403)
  t.equal(user.json().code, 'FORBIDDEN')
})
