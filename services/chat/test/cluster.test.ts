import t from 'tap'
import { startRedisServer, waitFor } from '@platform/kit/testing'
import { build, clients, shared, type Client, type Frame } from './helper.js'

const quiet = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' }

const contents = (frames: Frame[]) => frames.map((f) => f.content)

/** Waits until the client has `n` message frames and takes them. */
async function messages(c: Client, n: number): Promise<Frame[]> {
  await waitFor(() => c.frames.filter((f) => f.type === 'message').length >= n, 20_000)
  return c.drain('message')
}

t.test('clients on two instances see each other’s messages in the same order, each once', async (t) => {
  const s = await shared(t)
  const one = await build(t, quiet, s)
  const two = await build(t, quiet, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)

  // Taking turns: every message reaches both, in the order it was sent.
  for (let i = 1; i <= 6; i++) {
    const [from, to] = i % 2 ? [a, b] : [b, a]
    const sent = await from.request({ type: 'message', content: `turn ${i}` })
    const got = await to.next('message')
    t.equal(got.id, sent.id)
  }
  a.drain('message')
  b.drain('message')

  // Both at once: the same order everywhere (the persisted one), no duplicates, nothing missing.
  for (let i = 0; i < 15; i++) {
    a.send({ type: 'message', content: `a${i}` })
    b.send({ type: 'message', content: `b${i}` })
  }
  const onA = await messages(a, 30)
  const onB = await messages(b, 30)
  // A barrier instead of a pause: delivery is in seq order, so once both have seq 37 nothing of 7..36 is on its way.
  const end = await a.request({ type: 'message', content: 'end' })
  t.equal(end.seq, 37)
  await b.next((f) => f.type === 'message' && f.id === end.id)
  t.strictSame(
    [...onA, ...a.drain('message')].map((f) => f.seq),
    Array.from({ length: 30 }, (_, i) => i + 7),
    'A: seq 7..36 once each'
  )
  t.strictSame(
    [...onB, ...b.drain('message')].map((f) => f.id),
    onA.map((f) => f.id),
    'B got the same messages in the same order'
  )
  t.strictSame(
    contents(onA.filter((f) => f.content.startsWith('a'))),
    Array.from({ length: 15 }, (_, i) => `a${i}`),
    'a client’s own messages keep their order'
  )
  const { rows } = await s.schema.query<{ seq: number }>('SELECT seq FROM chat_messages WHERE chat_session_id = $1 ORDER BY id', [chatSessionId])
  t.strictSame(
    rows.map((r) => r.seq),
    Array.from({ length: 37 }, (_, i) => i + 1),
    'ids follow seq: replay by id misses nothing'
  )
})

t.test('typing and session_closed cross instances', async (t) => {
  const s = await shared(t)
  const one = await build(t, quiet, s)
  const two = await build(t, quiet, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)
  b.send({ type: 'typing', isTyping: true })
  t.strictSame(await a.next('typing'), { type: 'typing', chatSessionId, userId: 'u1', isTyping: true })
  const closed = await b.request({ type: 'session_close' })
  t.strictSame(await a.next('session_closed'), { type: 'session_closed', chatSessionId, closedAt: closed.closedAt, reason: 'user' })
  t.equal((await a.request({ type: 'message', content: 'late' })).code, 'SESSION_CLOSED')
})

t.test('reconnecting with lastMessageId replays exactly the missed messages, on any instance', async (t) => {
  const s = await shared(t)
  const one = await build(t, { ...quiet, MAX_REPLAY_MESSAGES: '5', MAX_HISTORY_MESSAGES: '3' }, s)
  const two = await build(t, { ...quiet, MAX_REPLAY_MESSAGES: '5', MAX_HISTORY_MESSAGES: '3' }, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  let b = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)
  const sent: Frame[] = []
  for (let i = 1; i <= 3; i++) sent.push(await a.request({ type: 'message', content: `m${i}` }))
  const seen = await messages(b, 3)
  const last = seen.at(-1)!
  b.ws.terminate()

  for (let i = 4; i <= 8; i++) sent.push(await a.request({ type: 'message', content: `m${i}` }))
  b = await open(one.wsUrl, 'u1')
  const resumed = await b.init(chatSessionId, last.id)
  t.equal(resumed.recovered, true)
  t.strictSame(contents(resumed.history), ['m4', 'm5', 'm6', 'm7', 'm8'], 'exactly the missed ones, in order')
  t.strictSame(
    resumed.history.map((m: Frame) => m.id),
    sent.slice(3).map((f) => f.id)
  )

  // Live continues after the replay, with nothing repeated.
  await a.request({ type: 'message', content: 'm9' })
  t.strictSame(contents(await messages(b, 1)), ['m9'])

  // Up to date: nothing to replay.
  const current = await (await open(two.wsUrl, 'u1')).init(chatSessionId, sent.at(-1)?.id)
  t.strictSame(
    current.history.map((m: Frame) => m.content),
    ['m9']
  )
  t.equal(current.recovered, true)

  // Too far behind (more than MAX_REPLAY_MESSAGES): the latest MAX_HISTORY_MESSAGES instead.
  const behind = await (await open(two.wsUrl, 'u1')).init(chatSessionId, sent[0]!.id)
  t.equal(behind.recovered, false)
  t.strictSame(contents(behind.history), ['m7', 'm8', 'm9'])

  // An id from another session is not a position in this one.
  const c = await open(one.wsUrl, 'u1')
  const other = await c.init()
  const foreign = await c.request({ type: 'message', content: 'elsewhere' })
  const wrong = await (await open(two.wsUrl, 'u1')).init(chatSessionId, foreign.id)
  t.equal(wrong.recovered, false)
  t.strictSame(contents(wrong.history), ['m7', 'm8', 'm9'])
  t.not(other.chatSessionId, chatSessionId)
})

t.test('the rate limit is shared by instances through Redis, and per instance while Redis is down', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const s = await shared(t)
  // A stopped Redis refuses connections at once: no short command timeout is needed to notice it, and a
  // busy machine never turns a slow answer into a local count.
  const env = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '4', REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '5000' }
  const one = await build(t, env, s)
  const two = await build(t, env, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  await b.init(chatSessionId)
  t.equal((await a.request({ type: 'message', content: '1' })).type, 'message')
  t.equal((await b.request({ type: 'message', content: '2' })).type, 'message')
  t.equal((await a.request({ type: 'message', content: '3' })).type, 'message')
  t.equal((await b.request({ type: 'message', content: '4' })).type, 'message')
  const onTwo = await b.request({ type: 'message', content: '5' })
  t.equal(onTwo.code, 'RATE_LIMITED', 'the fifth is refused, whichever instance gets it')
  t.equal((await a.request({ type: 'message', content: '6' })).code, 'RATE_LIMITED')
  // Another user has an allowance of their own.
  const other = await open(two.wsUrl, 'u2')
  await other.init()
  t.equal((await other.request({ type: 'message', content: 'mine' })).type, 'message')

  await redis.stop()
  await waitFor(async () => (await one.app.inject({ method: 'GET', url: '/ready' })).json().checks.redis === 'down', 20_000)
  const ready = await one.app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().status, 'degraded')
  // Each instance now counts on its own: 4 more on each, then refused.
  for (const c of [a, b]) {
    for (let i = 0; i < 4; i++) t.equal((await c.request({ type: 'message', content: `x${i}` })).type, 'message')
    t.equal((await c.request({ type: 'message', content: 'over' })).code, 'RATE_LIMITED')
  }
})
