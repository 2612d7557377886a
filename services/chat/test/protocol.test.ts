import t from 'tap'
import { testToken } from '@platform/kit/testing'
import { build, clients, Client, type Frame } from './helper.js'

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

t.test('welcome, a new session, a message persisted then broadcast with its ref, the assistant reply', async (t) => {
  const { app, wsUrl, schema } = await build(t)
  const open = clients(t)
  const a = await Client.open(wsUrl, { token: testToken('u1') })
  t.teardown(() => a.ws.terminate())
  const welcome = await a.next('welcome')
  t.match(welcome, { connectionId: UUID, serverTime: ISO })
  t.strictSame(welcome, {
    type: 'welcome',
    connectionId: welcome.connectionId,
    user: { id: 'u1', type: 'client' },
    serverTime: welcome.serverTime,
    limits: { maxMessageLength: 2000, messagesPerMinute: 10, maxPayloadBytes: 16384 }
  })

  const session = await a.init()
  t.match(session.chatSessionId, UUID)
  const { ref, chatSessionId } = session
  t.strictSame(session, { type: 'session', ref, chatSessionId, status: 'active', history: [], recovered: false, canWrite: true })
  const id: string = session.chatSessionId

  // A second connection of the same user joins the session and sees the same messages.
  const b = await open(wsUrl, 'u1')
  t.equal((await b.init(id)).chatSessionId, id)

  const mine = await a.request({ type: 'message', content: 'how do I rate a chat?', ref: 42 })
  t.strictSame(mine, {
    type: 'message',
    ref: 42,
    id: mine.id,
    chatSessionId: id,
    seq: 1,
    sender: 'user',
    content: 'how do I rate a chat?',
    metadata: {},
    processingMs: null,
    createdAt: mine.createdAt
  })
  const theirs = await b.next('message')
  const { ref: _ref, ...withoutRef } = mine
  t.strictSame(theirs, withoutRef, 'others get it without the ref')

  const reply = await a.next((f) => f.type === 'message' && f.sender === 'assistant')
  t.equal(reply.seq, 2)
  t.equal(reply.content, 'You can rate a chat from 1 to 5 stars once you are done; it helps us improve.')
  t.strictSame(reply.metadata, { responder: 'builtin', intent: 'rating', understood: true, replyTo: mine.id })
  t.equal(typeof reply.processingMs, 'number')
  t.equal((await b.next((f) => f.type === 'message' && f.sender === 'assistant')).id, reply.id)
  t.ok(BigInt(reply.id) > BigInt(mine.id), 'ids grow')

  const { rows } = await schema.query<{ sender: string; seq: number; processing_ms: number | null }>(
    'SELECT sender, seq, processing_ms FROM chat_messages WHERE chat_session_id = $1 ORDER BY id',
    [id]
  )
  const stored = rows.map((r) => [r.sender, r.seq, r.processing_ms === null])
  t.strictSame(
    stored,
    [
      ['user', 1, true],
      ['assistant', 2, false]
    ],
    'the user message without processingMs, the reply with it'
  )
  t.equal(app.chatHub.connections.size, 2)
})

/** The error frame a refused frame gets back: its code and message, its ref when it had one. */
function refusal(code: string, message: string, ref?: string | number, retryable = false): Frame {
  return { type: 'error', code, message, retryable, ...(ref !== undefined ? { ref } : {}) }
}

/** Sends a frame (with `ref` when given) and returns the next error frame. */
const errorFor = (c: Client) => async (frame: Frame | string, ref?: string | number) => {
  if (typeof frame === 'string') c.send(frame)
  else c.send(ref === undefined ? frame : { ...frame, ref })
  return c.next('error')
}

const NO_SESSION = 'Send session_init first: there is no chat session on this connection'
const CLOSED = 'This chat session is closed: start a new one with session_init'

t.test('every error code arrives as a frame with its ref, and the socket stays open', async (t) => {
  const { wsUrl } = await build(t, { RATE_LIMIT_MESSAGES_PER_MINUTE: '3', MAX_MESSAGE_LENGTH: '20', ASSISTANT_ENABLED: 'false' })
  const c = await clients(t)(wsUrl, 'u1')
  const err = errorFor(c)
  const missing = '00000000-0000-4000-8000-000000000000'
  const beforeSession: Array<[Frame | string, string | number | undefined, Frame]> = [
    [{ type: 'message', content: 'early' }, 'r1', refusal('NO_SESSION', NO_SESSION, 'r1')],
    [{ type: 'typing', isTyping: true }, 'r2', refusal('NO_SESSION', NO_SESSION, 'r2')],
    ['{"type": "message", ', undefined, refusal('INVALID_FRAME', 'The frame is not valid JSON')],
    [{ type: 'message' }, 3, refusal('INVALID_FRAME', 'Invalid message frame: frame must have required properties content', 3)],
    [{ type: 'hug' }, 'r4', refusal('UNKNOWN_TYPE', 'Unknown frame type "hug"; use one of session_init, message, typing, session_close', 'r4')],
    [
      { type: 'session_init', chatSessionId: missing },
      'r5',
      refusal('SESSION_NOT_FOUND', `No chat session ${missing}: it does not exist or is not yours`, 'r5')
    ],
    [{ type: 'session_init', lastMessageId: '5' }, 'r6', refusal('INVALID_FRAME', 'lastMessageId needs the chatSessionId it belongs to', 'r6')]
  ]
  for (const [frame, ref, expected] of beforeSession) t.strictSame(await err(frame, ref), expected, expected.code)

  const session = await c.init()
  t.strictSame(await err({ type: 'message', content: ' \n\t ' }, 'r7'), refusal('EMPTY_MESSAGE', 'The message is empty: write something first', 'r7'))
  t.strictSame(
    await err({ type: 'message', content: 'x'.repeat(21) }, 'r8'),
    refusal('MESSAGE_TOO_LONG', 'The message has 21 characters; at most 20 are allowed', 'r8')
  )
  // The window (Redis's, real time) opens with m1: what is left of it when refused is 60 s minus at most what has passed.
  const windowFrom = Date.now()
  for (let i = 1; i <= 3; i++) t.equal((await c.request({ type: 'message', content: `m${i}` })).seq, i)
  const limited = await err({ type: 'message', content: 'one too many' }, 'r9')
  const passed = Date.now() - windowFrom
  t.match(limited, { code: 'RATE_LIMITED', retryable: true, ref: 'r9' })
  t.ok(limited.retryAfterMs >= 60_000 - passed && limited.retryAfterMs <= 60_000, `retryAfterMs ${limited.retryAfterMs} (${passed} ms passed)`)
  t.equal(limited.message, `At most 3 messages per minute: retry in ${Math.ceil(limited.retryAfterMs / 1000)} s`)

  t.equal((await c.request({ type: 'session_close' })).type, 'session_closed')
  t.strictSame(await err({ type: 'message', content: 'after close' }, 'r10'), refusal('SESSION_CLOSED', CLOSED, 'r10'))
  t.strictSame(await err({ type: 'session_close' }, 'r11'), refusal('SESSION_CLOSED', CLOSED, 'r11'))
  t.equal(c.ws.readyState, c.ws.OPEN, 'no error closed the socket')

  // Resuming the closed session shows its transcript as closed.
  const again = await c.init(session.chatSessionId)
  t.equal(again.status, 'closed')
  t.strictSame(
    again.history.map((m: { content: string }) => m.content),
    ['m1', 'm2', 'm3']
  )
})

t.test("an admin reads another user's session but may not write in it; anyone else is told it does not exist", async (t) => {
  const { wsUrl } = await build(t, { ASSISTANT_ENABLED: 'false' })
  const open = clients(t)
  const owner = await open(wsUrl, 'u2')
  const theirs = await owner.init()
  const admin = await open(wsUrl, testToken('boss', ['user', 'admin']))
  const watched = await admin.init(theirs.chatSessionId)
  t.equal(watched.canWrite, false)
  t.strictSame(
    await errorFor(admin)({ type: 'message', content: 'hello' }, 'r12'),
    refusal('FORBIDDEN', 'You may read this chat session but not write in it', 'r12')
  )
  // ...but it sees the owner's messages live.
  await owner.request({ type: 'message', content: 'owner speaks' })
  t.equal((await admin.next('message')).content, 'owner speaks')

  // Someone else's session is SESSION_NOT_FOUND, exactly like a missing one.
  const other = await open(wsUrl, 'u1')
  t.strictSame(
    await errorFor(other)({ type: 'session_init', chatSessionId: theirs.chatSessionId }, 'r13'),
    refusal('SESSION_NOT_FOUND', `No chat session ${theirs.chatSessionId}: it does not exist or is not yours`, 'r13')
  )
})

t.test('typing is relayed to the other connections only, throttled, never persisted', async (t) => {
  const { wsUrl, schema } = await build(t, { TYPING_THROTTLE_MS: '60000', ASSISTANT_ENABLED: 'false' })
  const open = clients(t)
  const a = await open(wsUrl, 'u1')
  const b = await open(wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)
  a.send({ type: 'typing', isTyping: true })
  t.strictSame(await b.next('typing'), { type: 'typing', chatSessionId, userId: 'u1', isTyping: true })
  a.send({ type: 'typing', isTyping: true })
  a.send({ type: 'typing', isTyping: true })
  a.send({ type: 'typing', isTyping: false })
  t.strictSame(await b.next('typing'), { type: 'typing', chatSessionId, userId: 'u1', isTyping: false }, 'repeats are throttled')
  await a.request({ type: 'message', content: 'sync' })
  await b.next('message')
  t.strictSame(b.drain('typing'), [])
  t.strictSame(a.drain('typing'), [], 'the sender does not get its own typing')
  const { rows } = await schema.query('SELECT count(*)::int AS n FROM chat_messages')
  t.equal(rows[0]?.n, 1)
})

t.test('session_close closes the session for every connection', async (t) => {
  const { wsUrl, schema } = await build(t)
  const open = clients(t)
  const a = await open(wsUrl, 'u1')
  const b = await open(wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)
  const closed = await a.request({ type: 'session_close', ref: 'bye' })
  t.match(closed, { type: 'session_closed', ref: 'bye', chatSessionId, reason: 'user', closedAt: ISO })
  t.strictSame(await b.next('session_closed'), { type: 'session_closed', chatSessionId, closedAt: closed.closedAt, reason: 'user' })
  const { rows } = await schema.query<{ status: string; closed_at: Date }>('SELECT status, closed_at FROM chat_sessions WHERE id = $1', [
    chatSessionId
  ])
  t.equal(rows[0]?.status, 'closed')
  t.equal(rows[0]?.closed_at.toISOString(), closed.closedAt)
  // A closed session's connections may start a new one.
  const next = await b.init()
  t.not(next.chatSessionId, chatSessionId)
  t.equal(next.status, 'active')
})

t.test('an anonymous connection chats in its own session and is limited per connection', async (t) => {
  const { wsUrl, schema } = await build(t, { RATE_LIMIT_MESSAGES_PER_MINUTE: '2', ASSISTANT_ENABLED: 'false' })
  const open = clients(t)
  const a = await Client.open(wsUrl)
  t.teardown(() => a.ws.terminate())
  const welcome = await a.next('welcome')
  t.strictSame(welcome.user, { id: `anon-${welcome.connectionId}`, type: 'anonymous' })
  const { chatSessionId } = await a.init()
  await a.request({ type: 'message', content: 'one' })
  await a.request({ type: 'message', content: 'two' })
  t.equal((await a.request({ type: 'message', content: 'three' })).code, 'RATE_LIMITED')
  // Another anonymous connection has its own allowance, and joins the anonymous session by its id.
  const b = await open(wsUrl, null)
  t.equal((await b.init(chatSessionId)).history.length, 2)
  t.equal((await b.request({ type: 'message', content: 'from b' })).seq, 3)
  const { rows } = await schema.query<{ user_id: string | null; user_type: string }>('SELECT user_id, user_type FROM chat_sessions')
  t.strictSame(rows, [{ user_id: null, user_type: 'anonymous' }])
})
