import t from 'tap'
import { badTokens, bearer, testToken, waitFor } from '@platform/kit/testing'
import { T, build, consuming, outboxEvents, publisher, sessionStates, taskEvent } from './helper.js'

const service = bearer(testToken('producer', ['service']))
const admin = bearer(testToken('root', ['admin']))
const u1 = bearer(testToken('u1'))
const u2 = bearer(testToken('u2'))

const { app, schema, config } = await build(t)
const post = (payload: object, headers = service) => app.inject({ method: 'POST', url: '/api/v1/task-sessions/events', headers, payload })
const get = (url: string, headers = u1) => app.inject({ method: 'GET', url, headers })

await t.test('the intake takes service tokens only', async (t) => {
  const event = taskEvent(T.created, { taskId: 'h0-a', taskType: 'image_analysis', shortId: 'h0' })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/task-sessions/events', payload: event })).json().code, 'TOKEN_MISSING')
  for (const headers of [u1, admin]) {
    const res = await post(event, headers)
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'FORBIDDEN')
  }
  t.equal((await post(event, bearer(badTokens.algNone()))).statusCode, 401)
  t.same(await sessionStates(schema), [], 'refused events changed nothing')
})

await t.test('POSTed events are handled exactly like NATS events, duplicates included', async (t) => {
  const created = taskEvent(T.created, { taskId: 'h1-a', taskType: 'scenario_generation', shortId: 'h1', userId: 'u1' })
  const res = await post(created)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { id: created.id, type: 'tasks.created', changes: { created: 1, updated: 0, removed: 0 } })
  t.same((await post(created)).json().changes, { created: 0, updated: 0, removed: 0 }, 'a duplicate changes nothing')
  const done = taskEvent(T.completed, { taskId: 'h1-a', taskType: 'scenario_generation', shortId: 'h1' })
  t.same((await post(done)).json().changes, { created: 0, updated: 1, removed: 0 })
  t.same(await sessionStates(schema), ['h1-a:completed'])

  // Mixed channels: created over HTTP, completed over NATS.
  await consuming(app)
  t.same((await post(taskEvent(T.created, { taskId: 'h1-b', taskType: 'image_analysis', shortId: 'h1' }))).json().changes.created, 1)
  const pub = await publisher(t, config.NATS_NAMESPACE)
  await pub.publish(T.completed, { taskId: 'h1-b', taskType: 'image_analysis', shortId: 'h1' })
  await waitFor(async () => (await sessionStates(schema)).join() === 'h1-a:completed')
  t.same((await post(taskEvent(T.scenarioSaved, { shortId: 'h1' }))).json().changes, { created: 0, updated: 0, removed: 1 })
  t.same(await sessionStates(schema), [])
})

await t.test('malformed events are refused with a code and change nothing', async (t) => {
  const good = taskEvent(T.created, { taskId: 'h2-a', taskType: 'image_analysis', shortId: 'h2' })
  const cases: Array<[object, string, RegExp]> = [
    [{ ...good, specversion: '0.3' }, 'INVALID_EVENT_ENVELOPE', /specversion/],
    [{ ...good, id: '' }, 'INVALID_EVENT_ENVELOPE', /id: must not be empty/],
    [{ ...good, type: 'tasks.started' }, 'UNKNOWN_EVENT_TYPE', /tasks.started/],
    [{ ...good, data: { taskId: 'h2-a', taskType: 'knitting', shortId: 'h2' } }, 'INVALID_EVENT_DATA', /taskType/],
    [{ ...good, data: { taskId: 'bad id', taskType: 'image_analysis', shortId: 'h2' } }, 'INVALID_EVENT_DATA', /taskId/],
    [[good], 'INVALID_EVENT_ENVELOPE', /object/]
  ]
  for (const [payload, code, message] of cases) {
    const res = await post(payload)
    t.equal(res.statusCode, 400, code)
    t.equal(res.json().code, code)
    t.match(res.json().message, message)
  }
  const badJson = await app.inject({
    method: 'POST',
    url: '/api/v1/task-sessions/events',
    headers: { ...service, 'content-type': 'application/json' },
    payload: '{"specversion":'
  })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().code, 'INVALID_JSON')
  const text = await app.inject({
    method: 'POST',
    url: '/api/v1/task-sessions/events',
    headers: { ...service, 'content-type': 'text/plain' },
    payload: 'hello'
  })
  t.equal(text.statusCode, 415)
  t.same(await sessionStates(schema), [])
})

const seed = async (taskId: string, shortId: string, taskType: string, userId?: string, end?: string) => {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, Number(taskId.replace(/\D/g, '')) || 0))
  await post(taskEvent(T.created, { taskId, taskType, shortId, ...(userId ? { userId } : {}) }, at))
  if (end) await post(taskEvent(end, { taskId, taskType, shortId }))
}

await t.test('GET by short id: a user sees their own sessions, admin and service see all; filters and paging', async (t) => {
  await seed('l1-1', 'l1', 'image_analysis', 'u1')
  await seed('l1-2', 'l1', 'scenario_generation', 'u1', T.completed)
  await seed('l1-3', 'l1', 'scenario_generation', 'u2', T.failed)
  await seed('l1-4', 'l1', 'video_generation', 'u1')
  await seed('l1-5', 'l1', 'video_generation')
  await seed('l2-1', 'l2', 'video_generation', 'u1')

  const mine = await get('/api/v1/task-sessions/l1')
  t.equal(mine.statusCode, 200)
  const body = mine.json()
  t.same(
    body.sessions.map((s: { taskId: string }) => s.taskId),
    ['l1-1', 'l1-2', 'l1-4']
  )
  t.equal(body.shortId, 'l1')
  t.equal(body.totalSessions, 3)
  t.equal(body.nextCursor, null)
  t.match(body.timestamp, /^\d{4}-\d\d-\d\dT/)
  t.same(body.sessions[0], {
    taskId: 'l1-1',
    shortId: 'l1',
    taskType: 'image_analysis',
    userId: 'u1',
    status: 'active',
    createdAt: '2026-01-01T00:00:11.000Z',
    updatedAt: body.sessions[0].updatedAt
  })

  t.same(
    (await get('/api/v1/task-sessions/l1', u2)).json().sessions.map((s: { taskId: string }) => s.taskId),
    ['l1-3']
  )
  for (const who of [admin, service]) {
    const all = (await get('/api/v1/task-sessions/l1', who)).json()
    t.equal(all.totalSessions, 5)
    t.same(
      all.sessions.map((s: { taskId: string }) => s.taskId),
      ['l1-1', 'l1-2', 'l1-3', 'l1-4', 'l1-5']
    )
  }

  const filtered = (await get('/api/v1/task-sessions/l1?taskType=scenario_generation&status=failed', admin)).json()
  t.same(
    filtered.sessions.map((s: { taskId: string }) => s.taskId),
    ['l1-3']
  )
  t.equal(filtered.totalSessions, 1)
  t.same(
    (await get('/api/v1/task-sessions/l1?taskType=video_generation')).json().sessions.map((s: { taskId: string }) => s.taskId),
    ['l1-4']
  )

  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const page: { sessions: Array<{ taskId: string }>; nextCursor: string | null; totalSessions: number } = (
      await get(`/api/v1/task-sessions/l1?limit=2${cursor ? `&cursor=${cursor}` : ''}`, admin)
    ).json()
    t.equal(page.totalSessions, 5)
    seen.push(...page.sessions.map((s) => s.taskId))
    cursor = page.nextCursor
    pages++
  } while (cursor)
  t.same(seen, ['l1-1', 'l1-2', 'l1-3', 'l1-4', 'l1-5'])
  t.equal(pages, 3)

  t.same((await get('/api/v1/task-sessions/nobody-here')).json().sessions, [])
})

await t.test('GET and DELETE by task id: 404 TASK_SESSION_NOT_FOUND for missing and for other users’ sessions', async (t) => {
  await seed('k1-1', 'k1', 'image_analysis', 'u1')
  await seed('k1-2', 'k1', 'image_analysis', 'u2')

  const own = await get('/api/v1/task-sessions/task/k1-1')
  t.equal(own.statusCode, 200)
  t.match(own.json(), { taskId: 'k1-1', shortId: 'k1', userId: 'u1', status: 'active' })
  const other = await get('/api/v1/task-sessions/task/k1-2')
  t.equal(other.statusCode, 404)
  t.same(other.json(), {
    error: 'Not Found',
    message: 'No session for task "k1-2"',
    code: 'TASK_SESSION_NOT_FOUND',
    requestId: other.headers['x-request-id']
  })
  t.equal((await get('/api/v1/task-sessions/task/k1-2', admin)).statusCode, 200)
  t.equal((await get('/api/v1/task-sessions/task/missing')).json().code, 'TASK_SESSION_NOT_FOUND')

  const del = (taskId: string, headers = u1) => app.inject({ method: 'DELETE', url: `/api/v1/task-sessions/task/${taskId}`, headers })
  t.equal((await del('k1-2')).statusCode, 404, 'a user cannot delete another user’s session')
  t.equal((await get('/api/v1/task-sessions/task/k1-2', admin)).statusCode, 200)
  const gone = await del('k1-1')
  t.equal(gone.statusCode, 204)
  t.equal(gone.body, '')
  t.equal((await get('/api/v1/task-sessions/task/k1-1')).statusCode, 404)
  t.equal((await del('k1-1')).json().code, 'TASK_SESSION_NOT_FOUND')
  t.equal((await del('k1-2', admin)).statusCode, 204)
  t.same(
    (await outboxEvents(schema)).filter((e) => e.includes(' k1-')),
    ['sessions.task.created k1-1', 'sessions.task.created k1-2', 'sessions.task.removed k1-1 deleted', 'sessions.task.removed k1-2 deleted']
  )
  // A redelivered creation does not bring a deleted session back.
  const again = await post(taskEvent(T.created, { taskId: 'k1-1', taskType: 'image_analysis', shortId: 'k1', userId: 'u1' }))
  t.same(again.json().changes, { created: 0, updated: 0, removed: 0 })
})

await t.test('ids and queries are validated: 400 with a code, never a 500', async (t) => {
  const long = 'x'.repeat(129)
  const cases: Array<['GET' | 'DELETE', string, string]> = [
    ['GET', '/api/v1/task-sessions/task/a%20b', 'INVALID_TASK_ID'],
    ['GET', `/api/v1/task-sessions/task/${long}`, 'INVALID_TASK_ID'],
    ['GET', '/api/v1/task-sessions/task/%E2%9C%93', 'INVALID_TASK_ID'],
    ['DELETE', '/api/v1/task-sessions/task/semi;colon', 'INVALID_TASK_ID'],
    ['GET', `/api/v1/task-sessions/${'s'.repeat(65)}`, 'INVALID_SHORT_ID'],
    ['GET', '/api/v1/task-sessions/%3Cscript%3E', 'INVALID_SHORT_ID'],
    ['GET', '/api/v1/task-sessions/l1?status=running', 'VALIDATION_ERROR'],
    ['GET', '/api/v1/task-sessions/l1?taskType=knitting', 'VALIDATION_ERROR'],
    ['GET', '/api/v1/task-sessions/l1?limit=0', 'VALIDATION_ERROR'],
    ['GET', '/api/v1/task-sessions/l1?limit=101', 'VALIDATION_ERROR'],
    ['GET', '/api/v1/task-sessions/l1?cursor=garbage', 'INVALID_CURSOR'],
    ['GET', '/api/v1/task-sessions/l1?surprise=1', 'VALIDATION_ERROR']
  ]
  for (const [method, url, code] of cases) {
    const res = await app.inject({ method, url, headers: u1 })
    t.equal(res.statusCode, 400, `${method} ${url}`)
    t.equal(res.json().code, code, `${method} ${url}`)
  }
  const anonymous = await app.inject({ method: 'GET', url: '/api/v1/task-sessions/task/a%20b' })
  t.equal(anonymous.statusCode, 401, 'authentication comes before validation')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/task-sessions/l1', headers: bearer(badTokens.expired()) })).json().code, 'TOKEN_EXPIRED')
})
