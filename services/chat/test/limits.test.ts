import t from 'tap'
import pg from 'pg'
import { startTcpProxy, waitFor } from '@platform/kit/testing'
import { build, clients, Client, type Frame } from './helper.js'

const quiet = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' }

t.test('a frame over 16 KiB closes the connection with 1009', async (t) => {
  const { wsUrl, app } = await build(t, quiet)
  const c = await Client.connect(wsUrl, 'u1')
  await c.init()
  c.send({ type: 'message', content: 'x'.repeat(16 * 1024) })
  const closed = await c.closed
  t.equal(closed.code, 1009)
  await waitFor(() => app.chatHub.connections.size === 0, 20_000)
  const under = await Client.connect(wsUrl, 'u1')
  t.teardown(() => under.ws.terminate())
  await under.init()
  t.equal((await under.request({ type: 'message', content: 'x'.repeat(15 * 1024) })).code, 'MESSAGE_TOO_LONG', 'a frame under the limit is answered')
})

t.test('a slow consumer is closed with 4008 once its unsent buffer passes 1 MiB', async (t) => {
  const { wsUrl, schema, app } = await build(t, { ...quiet, MAX_MESSAGE_LENGTH: '15000', WS_MAX_PENDING_FRAMES: '100' })
  const c = await Client.connect(wsUrl, 'u1')
  const { chatSessionId } = await c.init()
  // 50 messages of 15,000 characters: every session frame is about 750 KB.
  await schema.query(
    `WITH m AS (INSERT INTO chat_messages (chat_session_id, seq, sender, content)
       SELECT $1, g, 'user', repeat('x', 15000) FROM generate_series(1, 50) g RETURNING 1)
     UPDATE chat_sessions SET last_seq = 50 WHERE id = $1`,
    [chatSessionId]
  )
  c.ws.pause()
  for (let i = 0; i < 40; i++) c.send({ type: 'session_init', chatSessionId })
  await waitFor(async () => (await app.metrics.getSingleMetricAsString('chat_slow_consumer_closes_total')).endsWith(' 1'), 20_000)
  c.ws.resume()
  t.strictSame(await c.closed, { code: 4008, reason: 'slow consumer' })
  t.ok(c.frames.length < 40, `the server stopped sending (${c.frames.length} of 40 frames)`)
})

t.test('the heartbeat drops a peer that misses its pong and keeps idle live ones', async (t) => {
  // The interval never fires here: the test beats by hand and waits for each pong, so no timer races it.
  const { wsUrl, app } = await build(t, { ...quiet, HEARTBEAT_INTERVAL_MS: '3600000' })
  const open = clients(t)
  const alive = await open(wsUrl, 'u1')
  let pings = 0
  alive.ws.on('ping', () => pings++)
  const dead = await open(wsUrl, 'u2', { ws: { autoPong: false } })
  t.equal(app.chatHub.connections.size, 2)
  const live = [...app.chatHub.connections].find((c) => c.who.id === 'u1')!
  const beat = async (n: number) => {
    app.chatHub.beat()
    await waitFor(() => pings === n && live.alive, 20_000)
  }
  await beat(1)
  t.equal(dead.ws.readyState, dead.ws.OPEN, 'one missed pong is not yet enough')
  await beat(2)
  const closed = await dead.closed
  t.equal(closed.code, 1006, 'terminated without a close frame at the next beat')
  await beat(3)
  t.equal(alive.ws.readyState, alive.ws.OPEN, 'an idle client that answers pings stays')
  t.equal(pings, 3)
  t.equal(app.chatHub.connections.size, 1)
})

t.test('too many frames waiting: the extra ones are answered RATE_LIMITED', async (t) => {
  const { wsUrl } = await build(t, { ...quiet, WS_MAX_PENDING_FRAMES: '2' })
  const c = await clients(t)(wsUrl, 'u1')
  for (let i = 0; i < 10; i++) c.send({ type: 'session_init', ref: i })
  const replies: Frame[] = []
  for (let i = 0; i < 10; i++) replies.push(await c.next((f) => f.ref === i))
  const limited = replies.filter((f) => f.type === 'error')
  t.ok(limited.length >= 1, `${limited.length} refused`)
  t.strictSame(limited[0], {
    type: 'error',
    code: 'RATE_LIMITED',
    message: 'Too many frames waiting to be processed: slow down',
    retryable: true,
    retryAfterMs: 1000,
    ref: limited[0]!.ref
  })
  t.equal(replies.filter((f) => f.type === 'session').length + limited.length, 10, 'every frame got an answer')
})

t.test('graceful shutdown: a message in flight is persisted and delivered, then 1012', async (t) => {
  const built = await build(t, quiet)
  const c = await Client.connect(built.wsUrl, 'u1')
  const { chatSessionId } = await c.init()
  // Hold the session's row lock so the message is stuck mid-persist when shutdown starts.
  const blocker = new pg.Client({ connectionString: built.schema.url, options: `-c search_path="${built.schema.schema}"` })
  await blocker.connect()
  t.teardown(() => blocker.end())
  await blocker.query('BEGIN')
  await blocker.query('SELECT 1 FROM chat_sessions WHERE id = $1 FOR UPDATE', [chatSessionId])
  c.send({ type: 'message', content: 'in flight', ref: 'f' })
  await waitFor(() => [...built.app.chatHub.connections][0]?.queue !== null, 20_000, 5)
  const closing = built.close()
  await waitFor(() => built.app.chatHub.draining, 20_000, 5)
  t.equal(c.ws.readyState, c.ws.OPEN, 'the socket waits for the message')
  c.send({ type: 'message', content: 'too late', ref: 'late' })
  t.strictSame(await c.next((f) => f.ref === 'late'), {
    type: 'error',
    code: 'SERVICE_UNAVAILABLE',
    message: 'This instance is restarting: reconnect and send again',
    retryable: true,
    retryAfterMs: 1000,
    ref: 'late'
  })
  await blocker.query('COMMIT')
  const delivered = await c.next((f) => f.ref === 'f')
  t.equal(delivered.content, 'in flight')
  t.strictSame(await c.closed, { code: 1012, reason: 'service restart' })
  await closing
  const { rows } = await built.schema.query<{ content: string }>('SELECT content FROM chat_messages')
  t.strictSame(rows, [{ content: 'in flight' }])
})

t.test('Postgres down: DATABASE_UNAVAILABLE frames, the socket stays, it recovers by itself', async (t) => {
  const proxy = await startTcpProxy(5432)
  t.teardown(() => proxy.close())
  const { wsUrl } = await build(t, { ...quiet, DATABASE_URL: `postgresql://postgres@127.0.0.1:${proxy.port}/test` })
  const c = await clients(t)(wsUrl, 'u1')
  await c.init()
  proxy.cut()
  t.strictSame(await c.request({ type: 'message', content: 'lost?', ref: 'd' }), {
    type: 'error',
    code: 'DATABASE_UNAVAILABLE',
    message: 'Chat storage is unavailable; nothing was stored: send again after retryAfterMs',
    retryable: true,
    retryAfterMs: 5000,
    ref: 'd'
  })
  t.equal(c.ws.readyState, c.ws.OPEN)
  proxy.restore()
  const again = await waitFor(
    async () => {
      const f = await c.request({ type: 'message', content: 'again' })
      return f.type === 'message' ? f : null
    },
    20_000,
    100
  )
  t.equal(again.content, 'again')
})
