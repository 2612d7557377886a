import t from 'tap'
import { Value } from 'typebox/value'
import { ChatMessageCreated } from '@platform/contracts'
import { collectEvents, startNatsServer, waitFor } from '@platform/kit/testing'
import { at, build, clients, shared, type Client, type Frame, type Tap } from './helper.js'

async function messages(c: Client, n: number): Promise<Frame[]> {
  await waitFor(() => c.frames.filter((f) => f.type === 'message').length >= n, 20_000)
  return c.drain('message')
}
const contents = (frames: Frame[]) => frames.map((f) => f.content)

/** Two instances on a NATS server of the test's own; u1's connections a, a2 (on one) and b, late (on two) share a session. */
async function cluster(t: Tap) {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const s = await shared(t)
  const env = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000', NATS_URL: nats.url, GAP_FILL_DELAY_MS: '50' }
  const one = await build(t, env, s)
  const two = await build(t, env, s)
  const open = clients(t)
  const [a, a2, b, late] = [await open(one.wsUrl, 'u1'), await open(one.wsUrl, 'u1'), await open(two.wsUrl, 'u1'), await open(two.wsUrl, 'u1')]
  const { chatSessionId } = await a.init()
  for (const c of [a2, b, late]) await c.init(chatSessionId)
  return { nats, namespace: s.ns, one, two, open, a, a2, b, late, chatSessionId }
}

/** The message ids of the message.created events in the stream once `count` are there, each checked against its contract. */
async function publishedMessageIds(t: Tap, natsUrl: string, namespace: string, count: number): Promise<string[]> {
  const events = await collectEvents(natsUrl, namespace, 'chat')
  t.teardown(() => events.close())
  await waitFor(() => events.events.filter((e) => e.type === 'chat.events.message.created').length === count, 10_000)
  return events.events.filter((e) => Value.Check(ChatMessageCreated, e)).map((e) => e.data.messageId)
}

t.test('a NATS outage mid-conversation loses nothing: local fan-out goes on, the rest is caught up', async (t) => {
  const { nats, namespace, one, two, open, a, a2, b, late: dropping, chatSessionId } = await cluster(t)
  const all: Frame[] = []
  all.push(await a.request({ type: 'message', content: 'before' }))
  for (const c of [a2, b, dropping]) t.strictSame(contents(await messages(c, 1)), ['before'])
  const lastSeenByLate = at(all, 0)
  dropping.ws.terminate()

  await nats.stop()
  await waitFor(() => !one.app.nats.connected && !two.app.nats.connected, 20_000)
  const ready = (await one.app.inject({ method: 'GET', url: '/ready' })).json()
  t.equal(ready.status, 'degraded', '/ready reports degraded while NATS is down')
  t.equal(ready.checks.nats, 'down')

  // Instance one keeps fanning out to its own connections.
  all.push(await a.request({ type: 'message', content: 'during 1' }))
  all.push(await a.request({ type: 'message', content: 'during 2' }))
  t.strictSame(contents(await messages(a2, 2)), ['during 1', 'during 2'], 'local fan-out continues')
  t.strictSame(b.drain('message'), [], 'instance two cannot hear them live')
  const gapFills = async () => Number((await two.app.metrics.getSingleMetricAsString('chat_gap_fills_total')).split(' ').pop())
  const fillsBefore = await gapFills()

  // A message persisted on instance two reveals the gap: it reads the missing ones from Postgres first.
  b.send({ type: 'message', content: 'from two', ref: 'mine' })
  const onTwo = await messages(b, 3)
  t.strictSame(contents(onTwo), ['during 1', 'during 2', 'from two'], 'the gap was filled, in order, before its own message')
  t.ok((await gapFills()) > fillsBefore, 'read back from Postgres: instance two never had them live')
  t.equal(at(onTwo, 2).ref, 'mine')
  all.push(at(onTwo, 2))

  await nats.start()
  await waitFor(() => one.app.nats.connected && two.app.nats.connected, 10_000)
  // After the reconnect instance one reads back what it missed.
  t.strictSame(contents(await messages(a, 1)), ['from two'])
  t.strictSame(contents(await messages(a2, 1)), ['from two'])

  // Live fan-out between instances works again.
  all.push(await b.request({ type: 'message', content: 'after' }))
  t.strictSame(contents(await messages(a, 1)), ['after'])
  t.strictSame(contents(await messages(a2, 1)), ['after'])

  // The client that dropped out reconnects with its lastMessageId: everything it missed, once, in order.
  const late = await open(one.wsUrl, 'u1')
  const resumed = await late.init(chatSessionId, lastSeenByLate.id)
  t.equal(resumed.recovered, true)
  t.strictSame(contents(resumed.history), ['during 1', 'during 2', 'from two', 'after'])

  // A barrier instead of a pause: delivery is in seq order, so once everyone has this one nothing older is on its way.
  const end = await b.request({ type: 'message', content: 'end' })
  all.push(end)
  for (const c of [a, a2, late]) await c.next((f) => f.type === 'message' && f.id === end.id)
  for (const c of [a, a2, b, late]) t.strictSame(c.drain('message'), [], 'no duplicates anywhere')

  // The events waited in the outbox and were all published after the outage.
  t.strictSame(
    await publishedMessageIds(t, nats.url, namespace, all.length),
    all.map((m) => m.id)
  )
})
