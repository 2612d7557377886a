import t from 'tap'
import { TEST_DATABASE_URL, bearer, createTestSchema, startTcpProxy, testToken, waitFor } from '@platform/kit/testing'
import { build, migrationsDir } from './helper.js'

t.test('with Postgres unreachable writes answer 503 DATABASE_UNAVAILABLE and the service recovers by itself', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'sessions')
  const proxy = await startTcpProxy(5432)
  t.teardown(async () => {
    await proxy.close()
    await schema.drop()
  })
  const url = new URL(TEST_DATABASE_URL)
  url.port = String(proxy.port)
  const { app } = await build(t, { DATABASE_URL: url.toString(), DATABASE_TIMEOUT_MS: '1000' }, schema)
  const h = bearer(testToken('u1'))
  const created = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })
  t.equal(created.statusCode, 201)

  proxy.cut()
  for (const req of [
    { method: 'GET' as const, url: '/api/v1/sessions' },
    { method: 'POST' as const, url: '/api/v1/sessions', payload: { title: 'b' } },
    { method: 'POST' as const, url: '/api/v1/sessions/active/a' },
    { method: 'DELETE' as const, url: '/api/v1/sessions/a' }
  ]) {
    const res = await app.inject({ ...req, headers: h })
    t.equal(res.statusCode, 503, `${req.method} ${req.url}: 503`)
    t.equal(res.headers['retry-after'], '5')
    t.match(res.json(), { code: 'DATABASE_UNAVAILABLE', error: 'Service Unavailable', retryAfter: 5 })
  }
  const cached = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
  t.equal(cached.statusCode, 200, 'the cached active id is still served')
  t.same(cached.json(), { id: created.json().id })

  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().status, 'unavailable')
  t.equal(ready.json().checks.postgres, 'down')
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'liveness does not depend on Postgres')

  proxy.restore()
  const back = await waitFor(async () => {
    const r = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })
    return r.statusCode === 201 ? r : null
  })
  t.equal(back.json().title, 'b')
  const { rows } = await schema.query('SELECT title, active FROM named_sessions ORDER BY title')
  t.same(
    rows,
    [
      { title: 'a', active: false },
      { title: 'b', active: true }
    ],
    'nothing half-written during the outage'
  )
})
