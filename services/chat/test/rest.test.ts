import t from 'tap'
import { Value } from 'typebox/value'
import { ChatMessageCreated, ChatSessionClosed, ChatSessionOpened } from '@platform/contracts'
import { bearer, collectEvents, testToken, waitFor } from '@platform/kit/testing'
import { at, build, clients, type Frame } from './helper.js'

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

t.test('sessions are listed newest first, a keyset page at a time', async (t) => {
  const { app, wsUrl, schema } = await build(t, { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' })
  const open = clients(t)
  const c = await open(wsUrl, 'u1')
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await c.init()).chatSessionId)
  // The order is by time: move the three apart (3, 2 and 1 s back, expiry alike) rather than wait between them.
  for (const [i, id] of ids.entries()) {
    await schema.query(
      `UPDATE chat_sessions SET created_at = created_at - make_interval(secs => $2), expires_at = expires_at - make_interval(secs => $2) WHERE id = $1`,
      [id, 3 - i]
    )
  }
  await (await open(wsUrl, 'u2')).init()
  const auth = bearer(testToken('u1'))
  const get = (url: string, headers = auth) => app.inject({ method: 'GET', url, headers })

  const page1 = (await get('/api/v1/chat/sessions?limit=2')).json()
  t.strictSame(
    page1.items.map((s: Frame) => s.id),
    [ids[2], ids[1]],
    'newest first'
  )
  t.match(page1.items[0], {
    userId: 'u1',
    userType: 'client',
    status: 'active',
    context: {},
    satisfactionRating: null,
    messageCount: 0,
    createdAt: ISO,
    updatedAt: ISO,
    closedAt: null,
    expiresAt: ISO
  })
  const s0 = page1.items[0]
  t.equal(new Date(s0.expiresAt).getTime() - new Date(s0.createdAt).getTime(), 24 * 3_600_000, 'expires 24 h after creation')
  const page2 = (await get(`/api/v1/chat/sessions?limit=2&cursor=${page1.nextCursor}`)).json()
  t.strictSame(page2, { items: [page2.items[0]], nextCursor: null })
  t.equal(page2.items[0].id, ids[0])
  const bad = await get('/api/v1/chat/sessions?cursor=bm9wZQ')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_CURSOR')
  const admin = bearer(testToken('boss', ['user', 'admin']))
  t.equal((await get('/api/v1/chat/sessions?userId=u1', admin)).json().items.length, 3, 'an admin lists anyone’s')
})

t.test('messages are paged back from the latest; context merges; rating; close over REST', async (t) => {
  const { app, wsUrl } = await build(t, { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' })
  const c = await clients(t)(wsUrl, 'u1')
  const auth = bearer(testToken('u1'))
  const get = (url: string, headers = auth) => app.inject({ method: 'GET', url, headers })

  // Messages: pages of the latest first, each oldest first.
  const id: string = (await c.init()).chatSessionId
  const sent: Frame[] = []
  for (let i = 1; i <= 5; i++) sent.push(await c.request({ type: 'message', content: `m${i}` }))
  const m1 = (await get(`/api/v1/chat/sessions/${id}/messages?limit=2`)).json()
  t.strictSame(
    m1.items.map((m: Frame) => m.content),
    ['m4', 'm5']
  )
  t.equal(m1.nextCursor, at(sent, 3).id)
  t.strictSame(m1.items[1], (({ type: _t, ref: _r, ...m }) => m)(at(sent, 4)), 'the stored message is what was broadcast')
  const m2 = (await get(`/api/v1/chat/sessions/${id}/messages?limit=2&before=${m1.nextCursor}`)).json()
  t.strictSame(
    m2.items.map((m: Frame) => m.content),
    ['m2', 'm3']
  )
  const m3 = (await get(`/api/v1/chat/sessions/${id}/messages?limit=2&before=${m2.nextCursor}`)).json()
  t.strictSame(m3, { items: [m3.items[0]], nextCursor: null })
  t.equal(m3.items[0].content, 'm1')
  t.equal((await get(`/api/v1/chat/sessions/${id}/messages?before=abc`)).json().code, 'VALIDATION_ERROR')
  t.equal((await get('/api/v1/chat/sessions/not-a-uuid/messages')).statusCode, 400)

  // Context: JSON merge patch.
  const patch = (payload: object) => app.inject({ method: 'PATCH', url: `/api/v1/chat/sessions/${id}/context`, headers: auth, payload })
  t.strictSame((await patch({ page: '/billing', cart: { items: 2, total: 10 } })).json().context, { page: '/billing', cart: { items: 2, total: 10 } })
  t.strictSame((await patch({ page: null, cart: { total: 12 } })).json().context, { cart: { items: 2, total: 12 } })
  const huge = await patch({ blob: 'x'.repeat(17_000) })
  t.equal(huge.statusCode, 422)
  t.equal(huge.json().code, 'CONTEXT_TOO_LARGE')
  const notObject = await patch([1, 2])
  t.equal(notObject.statusCode, 400)
  t.equal(notObject.json().code, 'VALIDATION_ERROR')

  // Rating.
  const rate = (rating: number) => app.inject({ method: 'PUT', url: `/api/v1/chat/sessions/${id}/rating`, headers: auth, payload: { rating } })
  t.equal((await rate(4)).json().satisfactionRating, 4)
  t.equal((await rate(6)).statusCode, 400)

  // Close over REST: live connections hear it; closing again changes nothing.
  const closed = await app.inject({ method: 'POST', url: `/api/v1/chat/sessions/${id}/close`, headers: auth })
  t.equal(closed.statusCode, 200)
  t.match(closed.json(), { id, status: 'closed', closedAt: ISO, messageCount: 5, satisfactionRating: 4 })
  t.strictSame(await c.next('session_closed'), { type: 'session_closed', chatSessionId: id, closedAt: closed.json().closedAt, reason: 'user' })
  const again = await app.inject({ method: 'POST', url: `/api/v1/chat/sessions/${id}/close`, headers: auth })
  t.strictSame(again.json(), closed.json(), 'idempotent')
  t.strictSame(
    (await get('/api/v1/chat/sessions?status=closed')).json().items.map((s: Frame) => s.id),
    [id]
  )
})

t.test('events: session.opened, message.created (userId, loginSessionId), session.closed, through the outbox', async (t) => {
  const { wsUrl, config } = await build(t)
  const events = await collectEvents(config.NATS_URL, config.NATS_NAMESPACE, 'chat')
  t.teardown(() => events.close())
  const c = await clients(t)(wsUrl, testToken('u1', ['user'], { sid: 'login-1' }))
  const { chatSessionId } = await c.init()
  const mine = await c.request({ type: 'message', content: 'hello' })
  const reply = await c.next('message')
  await c.request({ type: 'session_close' })
  await waitFor(() => events.events.length === 4, 20_000)
  const [opened, created, answered, closed] = events.events
  t.ok(Value.Check(ChatSessionOpened, opened), 'session.opened matches its contract')
  t.ok(Value.Check(ChatMessageCreated, created), 'message.created matches its contract')
  t.ok(Value.Check(ChatMessageCreated, answered))
  t.ok(Value.Check(ChatSessionClosed, closed), 'session.closed matches its contract')
  t.strictSame(opened?.data, { chatSessionId, userId: 'u1', userType: 'client', loginSessionId: 'login-1' })
  t.equal(opened?.source, '/chat')
  const createdData = {
    chatSessionId,
    sender: 'user',
    userId: 'u1',
    userType: 'client',
    loginSessionId: 'login-1',
    contentLength: 5,
    messageId: mine.id,
    seq: 1,
    createdAt: mine.createdAt
  }
  t.strictSame(created?.data, createdData)
  t.strictSame(answered?.data, {
    ...createdData,
    sender: 'assistant',
    contentLength: reply.content.length,
    messageId: reply.id,
    seq: 2,
    createdAt: reply.createdAt
  })
  t.match(closed?.data, { chatSessionId, userId: 'u1', reason: 'user', closedAt: ISO })
  t.equal(events.deliveries, 4, 'each published once')
})

t.test('POST /internal/cleanup closes expired sessions and removes old closed ones with their messages, in batches', async (t) => {
  const { app, wsUrl, schema, config } = await build(t, { ASSISTANT_ENABLED: 'false', CHAT_RETENTION_DAYS: '30' })
  const events = await collectEvents(config.NATS_URL, config.NATS_NAMESPACE, 'chat')
  t.teardown(() => events.close())
  const c = await clients(t)(wsUrl, 'u1')
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    ids.push((await c.init()).chatSessionId)
    await c.request({ type: 'message', content: `in ${i}` })
  }
  const live = at(ids, 4)
  // Sessions 0..2 closed 40 days ago; 3 and 4 (the one the client is in) are past expiresAt.
  await schema.query(
    `UPDATE chat_sessions SET status = 'closed', created_at = now() - interval '41 days', closed_at = now() - interval '40 days'
     WHERE id = ANY($1::uuid[])`,
    [ids.slice(0, 3)]
  )
  await schema.query(`UPDATE chat_sessions SET expires_at = now() - interval '1 minute' WHERE id = ANY($1::uuid[])`, [ids.slice(3)])

  const call = (token: string, payload: object = {}) => app.inject({ method: 'POST', url: '/internal/cleanup', headers: bearer(token), payload })
  const user = await call(testToken('u1'))
  t.equal(user.statusCode, 403)
  t.equal(user.json().code, 'FORBIDDEN')

  const service = bearer(testToken('cleanup-worker', ['service']))
  const stats = await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: service })
  t.strictSame(stats.json(), { chat_sessions: { active: 0, expired: 5, averageSessionDurationSeconds: 86_400 } })
  t.equal((await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: bearer(testToken('u1')) })).statusCode, 403)

  const res = await call(testToken('cleanup-worker', ['service']), { batchSize: 2 })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { expired: 2, removedSessions: 3, removedMessages: 3, batches: 3 })
  const closedFrame = await c.next('session_closed')
  t.match(closedFrame, { chatSessionId: live, reason: 'expired', closedAt: ISO })
  t.equal((await c.request({ type: 'message', content: 'late' })).code, 'SESSION_CLOSED')

  const { rows } = await schema.query<{ id: string; status: string }>('SELECT id::text, status FROM chat_sessions ORDER BY id')
  t.strictSame(
    rows,
    ids
      .slice(3)
      .sort()
      .map((id) => ({ id, status: 'closed' }))
  )
  const left = await schema.query<{ n: number }>('SELECT count(*)::int AS n FROM chat_messages')
  t.equal(left.rows[0]?.n, 2)
  await waitFor(() => events.events.filter((e) => e.type === 'chat.events.session.closed').length === 2, 20_000)
  t.strictSame(
    events.events.filter((e) => Value.Check(ChatSessionClosed, e)).map((e) => e.data.reason),
    ['expired', 'expired']
  )
  const noBody = await app.inject({ method: 'POST', url: '/internal/cleanup', headers: bearer(testToken('w', ['service'])) })
  t.strictSame(noBody.json(), { expired: 0, removedSessions: 0, removedMessages: 0, batches: 0 }, 'no body: defaults; nothing left to do')

  const after = (await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: service })).json()
  t.strictSame([after.chat_sessions.active, after.chat_sessions.expired], [0, 0])

  // Prisma and the migration agree on every column of every model.
  const prisma = app.prisma
  t.ok(await prisma.chatSession.findFirst())
  t.ok(await prisma.chatMessage.findFirst())
  t.ok(await prisma.outboxEvent.findFirst())
})
