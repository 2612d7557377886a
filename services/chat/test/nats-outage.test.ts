import t from 'tap'
import { collectEvents, startNatsServer, waitFor } from '@platform/kit/testing'
import { build, clients, shared, type Client, type Frame } from './helper.js'

async function messages(c: Client, n: number): Promise<Frame[]> {
  await waitFor(() => c.frames.filter((f) => f.type === 'message').length >= n, 20_000)
  return c.drain('message')
}
const contents = (frames: Frame[]) => frames.map((f) => f.content)

t.test('a NATS outage mid-conversation loses nothing: local fan-out goes on, the rest is caught up', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const s = await shared(t)
  const env = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000', NATS_URL: nats.url, GAP_FILL_DELAY_MS: '50' }
  const one = await build(t, env, s)
  const two = await build(t, env, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const a2 = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  let late = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.init()
  for (const c of [a2, b, late]) await c.init(chatSessionId)

  const all: Frame[] = []
  all.push(await a.request({ type: 'message', content: 'before' }))
  for (const c of [a2, b, late]) t.strictSame(contents(await messages(c, 1)), ['before'])
  const lastSeenByLate = all[0]!
  late.ws.terminate()

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
  t.equal(onTwo[2]!.ref, 'mine')
  all.push(onTwo[2]!)

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
  late = await open(one.wsUrl, 'u1')
  const resumed = await late.init(chatSessionId, lastSeenByLate.id)
  t.equal(resumed.recovered, true)
  t.strictSame(contents(resumed.history), ['during 1', 'during 2', 'from two', 'after'])

  // A barrier instead of a pause: delivery is in seq order, so once everyone has this one nothing older is on its way.
  const end = await b.request({ type: 'message', content: 'end' })
  all.push(end)
  for (const c of [a, a2, late]) await c.next((f) => f.type === 'message' && f.id === end.id)
  for (const c of [a, a2, b, late]) t.strictSame(c.drain('message'), [], 'no duplicates anywhere')

  // The events waited in the outbox and were all published after the outage.
  const events = await collectEvents(nats.url, s.ns, 'chat')
  t.teardown(() => events.close())
  await waitFor(() => events.events.filter((e) => e.type === 'chat.events.message.created').length === all.length, 10_000)
  t.strictSame(
    events.events.filter((e) => e.type === 'chat.events.message.created').map((e) => (e.data as { messageId: string }).messageId),
    all.map((m) => m.id)
  )
})
