import t from 'tap'
import type { NamedSessionEventData } from '@platform/contracts'
import type { Envelope } from '@platform/kit'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'

const user = (sub: string, roles = ['user']) => bearer(testToken(sub, roles))

t.test('creating a session makes it the only active one', async (t) => {
  const { app } = await build(t)
  const h = user('alice')
  const first = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'Data analysis' } })
  t.equal(first.statusCode, 201)
  const a = first.json()
  t.match(a, { userId: 'alice', title: 'Data analysis', active: true })
  t.match(a.id, /^[0-9a-f-]{36}$/)
  t.equal(a.createdAt, a.updatedAt)

  const second = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: '  ML model  ' } })
  t.equal(second.statusCode, 201)
  const b = second.json()
  t.equal(b.title, 'ML model', 'the title is trimmed')

  const list = (await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: h })).json()
  t.same(
    list.items.map((s: { title: string; active: boolean }) => [s.title, s.active]),
    [
      ['ML model', true],
      ['Data analysis', false]
    ]
  )
  t.equal(list.nextCursor, null)

  const active = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })
  t.equal(active.statusCode, 200)
  t.same(active.json(), { id: b.id })
  t.equal(active.headers['x-degradation-mode'], undefined)
  t.equal(active.headers['x-degradation-reason'], undefined)
})

t.test('no active session answers 404 NO_ACTIVE_SESSION', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: user('bob') })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'NO_ACTIVE_SESSION')
  t.equal(res.json().error, 'Not Found')
  t.equal(res.json().requestId, res.headers['x-request-id'])
})

t.test('a duplicate title is refused with 409 and changes nothing', async (t) => {
  const { app, schema } = await build(t)
  const h = user('carol')
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'one' } })
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'two' } })
  const dup = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: ' one' } })
  t.equal(dup.statusCode, 409)
  t.equal(dup.json().code, 'DUPLICATE_SESSION_TITLE')
  const { rows } = await schema.query('SELECT title, active FROM named_sessions ORDER BY title')
  t.same(
    rows,
    [
      { title: 'one', active: false },
      { title: 'two', active: true }
    ],
    'the previous active session was not deactivated by the failed create'
  )
  const { rows: events } = await schema.query('SELECT type FROM outbox ORDER BY seq')
  t.same(
    events.map((e) => e.type),
    ['sessions.named.created', 'sessions.named.created']
  )
})

t.test('titles are unique per user, not globally', async (t) => {
  const { app } = await build(t)
  const a = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: user('u1'), payload: { title: 'same' } })
  const b = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: user('u2'), payload: { title: 'same' } })
  t.equal(a.statusCode, 201)
  t.equal(b.statusCode, 201)
})

t.test('activating by title switches the active session', async (t) => {
  const { app, schema } = await build(t)
  const h = user('dave')
  const x = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'x / y?' } })).json()
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'z' } })

  const res = await app.inject({ method: 'POST', url: `/api/v1/sessions/active/${encodeURIComponent('x / y?')}`, headers: h })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { id: x.id, title: 'x / y?', active: true })
  t.same((await app.inject({ method: 'GET', url: '/api/v1/sessions/active', headers: h })).json(), { id: x.id })
  const { rows } = await schema.query('SELECT title FROM named_sessions WHERE active')
  t.same(rows, [{ title: 'x / y?' }])

  const again = await app.inject({ method: 'POST', url: `/api/v1/sessions/active/${encodeURIComponent('x / y?')}`, headers: h })
  t.equal(again.statusCode, 200, 'activating the active session again is fine')
  const { rows: events } = await schema.query('SELECT type FROM outbox ORDER BY seq')
  t.same(
    events.map((e) => e.type),
    ['sessions.named.created', 'sessions.named.created', 'sessions.named.activated'],
    'and emits nothing the second time'
  )

  const missing = await app.inject({ method: 'POST', url: '/api/v1/sessions/active/nope', headers: h })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'SESSION_NOT_FOUND')
  t.equal(missing.json().message, 'No session titled "nope"')
})

t.test('deleting: inactive ones go, the active one is refused', async (t) => {
  const { app, schema } = await build(t)
  const h = user('erin')
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'old' } })
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'new' } })

  const active = await app.inject({ method: 'DELETE', url: '/api/v1/sessions/new', headers: h })
  t.equal(active.statusCode, 400)
  t.equal(active.json().code, 'ACTIVE_SESSION_DELETION')

  const ok = await app.inject({ method: 'DELETE', url: '/api/v1/sessions/old', headers: h })
  t.equal(ok.statusCode, 204)
  t.equal(ok.body, '')
  const gone = await app.inject({ method: 'DELETE', url: '/api/v1/sessions/old', headers: h })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().code, 'SESSION_NOT_FOUND')
  const { rows } = await schema.query('SELECT title FROM named_sessions')
  t.same(rows, [{ title: 'new' }])
})

t.test('a user sees and changes only their own sessions; an admin may pass userId', async (t) => {
  const { app } = await build(t)
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: user('frank'), payload: { title: 'secret' } })

  const other = user('grace')
  t.same((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: other })).json(), { items: [], nextCursor: null })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/sessions/active/secret', headers: other })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/sessions/secret', headers: other })).statusCode, 404)
  const sneaky = await app.inject({ method: 'GET', url: '/api/v1/sessions?userId=frank', headers: other })
  t.equal(sneaky.statusCode, 403)
  t.equal(sneaky.json().code, 'FORBIDDEN')

  const admin = user('root', ['user', 'admin'])
  const seen = (await app.inject({ method: 'GET', url: '/api/v1/sessions?userId=frank', headers: admin })).json()
  t.same(
    seen.items.map((s: { title: string }) => s.title),
    ['secret']
  )
  const created = await app.inject({ method: 'POST', url: '/api/v1/sessions?userId=frank', headers: admin, payload: { title: 'by admin' } })
  t.equal(created.json().userId, 'frank')
})

t.test('listing pages with a cursor, newest first, none twice', async (t) => {
  const { app } = await build(t)
  const h = user('heidi')
  for (let i = 0; i < 7; i++) {
    await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `s${i}` } })
  }
  const titles: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const url: string = `/api/v1/sessions?limit=3${cursor ? `&cursor=${cursor}` : ''}`
    const page = (await app.inject({ method: 'GET', url, headers: h })).json()
    titles.push(...page.items.map((s: { title: string }) => s.title))
    cursor = page.nextCursor
    pages++
  } while (cursor)
  t.equal(pages, 3)
  t.same(titles, ['s6', 's5', 's4', 's3', 's2', 's1', 's0'])

  const bad = await app.inject({ method: 'GET', url: '/api/v1/sessions?cursor=garbage', headers: h })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_CURSOR')
  const big = await app.inject({ method: 'GET', url: '/api/v1/sessions?limit=101', headers: h })
  t.equal(big.statusCode, 400)
  t.equal(big.json().code, 'VALIDATION_ERROR')
})

t.test('every change emits its event through the outbox, with the envelope the contract names', async (t) => {
  const { app, schema } = await build(t)
  const h = user('ivan')
  const a = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'a' } })).json()
  const b = (await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'b' } })).json()
  await app.inject({ method: 'POST', url: '/api/v1/sessions/active/a', headers: h })
  await app.inject({ method: 'DELETE', url: '/api/v1/sessions/b', headers: h })
  const { rows } = await schema.query<{ type: string; envelope: Envelope<NamedSessionEventData> }>('SELECT type, envelope FROM outbox ORDER BY seq')
  t.same(
    rows.map((r) => [r.type, r.envelope.data.sessionId, r.envelope.data.previousActiveId]),
    [
      ['sessions.named.created', a.id, null],
      ['sessions.named.created', b.id, a.id],
      ['sessions.named.activated', a.id, b.id],
      ['sessions.named.deleted', b.id, null]
    ]
  )
  const env = rows[0]!.envelope
  t.equal(env.specversion, '1.0')
  t.equal(env.type, 'sessions.named.created')
  t.equal(env.source, '/sessions')
  t.equal(env.datacontenttype, 'application/json')
  t.match(env.time, /^\d{4}-\d\d-\d\dT/)
})
