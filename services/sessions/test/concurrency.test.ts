import t from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'

t.test('20 concurrent creates leave exactly one active session', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('racer'))
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `t${i}` } }))
  )
  t.same(
    results.map((r) => r.statusCode),
    Array(20).fill(201)
  )
  const { rows } = await schema.query<{ n: number; active: number }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE active)::int AS active FROM named_sessions WHERE user_id = 'racer'`
  )
  t.same(rows[0], { n: 20, active: 1 })
  const {
    rows: [last]
  } = await schema.query<{ id: string }>(`SELECT id FROM named_sessions WHERE user_id = 'racer' ORDER BY created_at DESC, id DESC LIMIT 1`)
  const {
    rows: [active]
  } = await schema.query<{ id: string }>(`SELECT id FROM named_sessions WHERE active`)
  t.equal(active!.id, last!.id, 'the last committed create is the active one')
  t.same(
    (await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })).json(),
    { id: active!.id },
    'the cache agrees with the database'
  )
})

t.test('20 concurrent activations leave exactly one active session', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('switcher'))
  for (let i = 0; i < 20; i++) {
    await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `t${i}` } })
  }
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => app.inject({ method: 'POST', url: `/api/v1/sessions/active/t${i}`, headers: h }))
  )
  t.same(
    results.map((r) => r.statusCode),
    Array(20).fill(200)
  )
  const { rows } = await schema.query<{ id: string }>(`SELECT id FROM named_sessions WHERE user_id = 'switcher' AND active`)
  t.equal(rows.length, 1)
  t.same(
    (await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })).json(),
    { id: rows[0]!.id },
    'the cache agrees with the database'
  )
})

t.test('the database itself refuses a second active session', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('direct'))
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })
  await t.rejects(schema.query(`UPDATE named_sessions SET active = true WHERE user_id = 'direct'`), { code: '23505' })
})
