import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import { waitFor } from '@platform/kit/testing'
import { build, clients, Client, type Frame } from './helper.js'

/** ok answers at once, hang never answers (only a timeout or an abort ends the call), fail answers 500. */
type Mode = 'ok' | 'hang' | 'fail'

/** A local OpenAI-compatible endpoint whose behaviour the test switches. */
async function fakeEndpoint(t: { teardown(fn: () => unknown): void }) {
  const state: { mode: Mode; requests: Array<{ url: string; auth: string | undefined; body: Frame }> } = { mode: 'ok', requests: [] }
  const server = createServer((req: IncomingMessage, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      const body: Frame = JSON.parse(raw)
      state.requests.push({ url: req.url ?? '', auth: req.headers.authorization, body })
      const answer = () => {
        if (res.destroyed) return
        const last = body.messages.at(-1)
        res.setHeader('content-type', 'application/json')
        res.end(
          JSON.stringify({
            model: 'fake-1',
            choices: [{ message: { role: 'assistant', content: `echo: ${last.content}` }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 10, completion_tokens: 3 }
          })
        )
      }
      if (state.mode === 'fail') {
        res.statusCode = 500
        res.end('{"error":"boom"}')
      } else if (state.mode !== 'hang') {
        answer()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise((r) => server.close(r))
  })
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('the fake endpoint listens on TCP')
  return { state, url: `http://127.0.0.1:${address.port}/v1` }
}

/** Sends a user message and returns the assistant's reply to it. */
async function ask(c: Client, content: string): Promise<Frame> {
  const mine = await c.request({ type: 'message', content })
  return c.next((f) => f.type === 'message' && f.sender === 'assistant' && f.metadata.replyTo === mine.id, 30_000)
}

/** The endpoint's settings and a breaker whose state changes only with the calls of the test. */
const breakerEnv = {
  RATE_LIMIT_MESSAGES_PER_MINUTE: '1000',
  ASSISTANT_API_KEY: 'sk-test',
  ASSISTANT_MODEL: 'fake-1',
  ASSISTANT_SYSTEM_PROMPT: 'Be brief.',
  // Generous: an answering endpoint is never cut off on a busy machine; a hanging one always is.
  RESPONSE_TIMEOUT_SECONDS: '5',
  ASSISTANT_BREAKER_VOLUME: '3',
  // Opens once failures reach 60 %: 2 of 4 calls do not, 3 of 5 do.
  ASSISTANT_BREAKER_ERROR_PERCENT: '60',
  // No window or reset time a test run reaches.
  ASSISTANT_BREAKER_WINDOW_MS: '600000',
  ASSISTANT_BREAKER_RESET_MS: '600000'
}

t.test('the endpoint answers with history; a timeout or an error falls back; the breaker opens', async (t) => {
  const fake = await fakeEndpoint(t)
  const { app, wsUrl, schema } = await build(t, { ...breakerEnv, ASSISTANT_URL: fake.url })
  const c = await clients(t)(wsUrl, 'u1')
  await c.init()

  const first = await ask(c, 'hello')
  t.equal(first.content, 'echo: hello')
  t.strictSame(first.metadata, {
    responder: 'openai',
    model: 'fake-1',
    usage: { promptTokens: 10, completionTokens: 3 },
    replyTo: first.metadata.replyTo
  })
  t.ok(Number.isInteger(first.processingMs) && first.processingMs >= 0, `processingMs ${first.processingMs}`)
  t.equal(fake.state.requests[0]?.url, '/v1/chat/completions')
  t.equal(fake.state.requests[0]?.auth, 'Bearer sk-test')
  t.strictSame(fake.state.requests[0]?.body, {
    model: 'fake-1',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' }
    ]
  })
  t.equal((await ask(c, 'and again')).content, 'echo: and again')
  t.strictSame(
    fake.state.requests[1]?.body.messages,
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'echo: hello' },
      { role: 'user', content: 'and again' }
    ],
    'the session’s recent history goes along'
  )

  fake.state.mode = 'hang'
  const slow = await ask(c, 'how do I rate a chat?')
  t.equal(slow.content, 'You can rate a chat from 1 to 5 stars once you are done; it helps us improve.', 'the built-in answer when it knows one')
  t.strictSame(slow.metadata, { responder: 'fallback', fallback: true, reason: 'timeout', intent: 'rating', replyTo: slow.metadata.replyTo })
  t.ok(Number.isInteger(slow.processingMs) && slow.processingMs >= 0, `processingMs ${slow.processingMs}`)

  fake.state.mode = 'fail'
  const failed = await ask(c, 'purple elephants')
  t.equal(failed.content, 'Sorry, the assistant is not available right now. Your message is saved; please try again in a moment.')
  t.strictSame(failed.metadata, { responder: 'fallback', fallback: true, reason: 'error', replyTo: failed.metadata.replyTo })
  t.equal(app.assistant.state, 'closed', '2 failures in 4 calls: 50 %, below 60 %')
  t.equal((await ask(c, 'purple elephants')).metadata.reason, 'error')
  t.equal(app.assistant.state, 'open', '3 failures in 5 calls: 60 %, open')

  const calls = fake.state.requests.length
  const open = await ask(c, 'purple elephants')
  t.strictSame(open.metadata, { responder: 'fallback', fallback: true, reason: 'circuit_open', replyTo: open.metadata.replyTo })
  t.equal(fake.state.requests.length, calls, 'an open breaker answers at once: the endpoint is not called')
  const ready = (await app.inject({ method: 'GET', url: '/ready' })).json()
  t.equal(ready.checks.assistant, 'down')
  t.equal(ready.status, 'degraded')

  const { rows } = await schema.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM chat_messages WHERE sender = 'assistant' AND (metadata->>'fallback')::boolean AND processing_ms IS NOT NULL`
  )
  t.equal(rows[0]?.n, 4, 'every fallback was persisted with its processing time')
})

t.test('after the reset time the breaker lets one probe through, and its success closes it', async (t) => {
  const fake = await fakeEndpoint(t)
  fake.state.mode = 'fail'
  const { app, wsUrl } = await build(t, {
    RATE_LIMIT_MESSAGES_PER_MINUTE: '1000',
    ASSISTANT_URL: fake.url,
    RESPONSE_TIMEOUT_SECONDS: '20',
    ASSISTANT_BREAKER_VOLUME: '1',
    ASSISTANT_BREAKER_ERROR_PERCENT: '50',
    ASSISTANT_BREAKER_WINDOW_MS: '600000',
    ASSISTANT_BREAKER_RESET_MS: '200'
  })
  const c = await clients(t)(wsUrl, 'u1')
  await c.init()
  t.equal((await ask(c, 'purple elephants')).metadata.reason, 'error')
  fake.state.mode = 'ok'
  // Half-open comes from the breaker's own timer: wait for it, however busy the machine.
  await waitFor(() => app.assistant.state === 'half_open', 20_000)
  t.equal((await ask(c, 'recovered?')).content, 'echo: recovered?', 'the half-open probe succeeds')
  t.equal(app.assistant.state, 'closed')
  t.equal((await ask(c, 'still fine')).metadata.responder, 'openai')
  t.equal(fake.state.requests.length, 3)
})

t.test('shutdown cuts an assistant call short: its fallback is persisted and delivered before 1012', async (t) => {
  const fake = await fakeEndpoint(t)
  fake.state.mode = 'hang'
  const built = await build(t, { ASSISTANT_URL: fake.url, RESPONSE_TIMEOUT_SECONDS: '20' })
  const c = await Client.connect(built.wsUrl, 'u1')
  await c.init()
  const mine = await c.request({ type: 'message', content: 'are you there?' })
  await waitFor(() => fake.state.requests.length === 1, 20_000)
  // The endpoint never answers: only the abort at shutdown can produce this fallback before 1012.
  await built.close()
  const reply = c.frames.find((f) => f.type === 'message' && f.sender === 'assistant')
  t.strictSame(reply?.metadata, { responder: 'fallback', fallback: true, reason: 'shutdown', replyTo: mine.id })
  t.strictSame(await c.closed, { code: 1012, reason: 'service restart' })
  const { rows } = await built.schema.query<{ sender: string; reason: string | null }>(
    `SELECT sender, metadata->>'reason' AS reason FROM chat_messages ORDER BY id`
  )
  t.strictSame(rows, [
    { sender: 'user', reason: null },
    { sender: 'assistant', reason: 'shutdown' }
  ])
})
