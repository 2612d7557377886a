import t, { type Test } from 'tap'
import { Type } from 'typebox'
import { Registry } from 'prom-client'
import { pino } from 'pino'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import {
  createEvent,
  createNatsClient,
  eventConsumer,
  streamNameFor,
  type ConsumedEvent,
  type DeadLetter,
  type EventConsumerOptions,
  type PublishedEnvelope,
  type StartableEventConsumer
} from '../src/index.js'
import { deleteStreams, testClock, uniqueName, waitFor, type TestClock } from '../src/testing/index.js'

// The kit's consumer against the shared NATS, without Fastify: each test has its own namespace (so its
// own TASKS and DEAD_LETTER streams), deleted at teardown.

const NATS_URL = 'nats://127.0.0.1:4222'
const TYPE = 'tasks.created'
const DURABLE = 'kit-test'
const log = pino({ level: 'silent' })
type Data = { n: number }

interface Setup {
  ns: string
  nc: NatsConnection
  clock: TestClock
  registry: Registry
  consumer: StartableEventConsumer
  publish(data: Data | string, msgID?: string | null, event?: PublishedEnvelope<Data>): Promise<PublishedEnvelope<Data> | null>
  letters(): Promise<Array<DeadLetter & { on: string }>>
  /** The server has delivered every message and heard every ack. */
  settled(): Promise<boolean>
}

async function setup(t: Test, opts: Partial<EventConsumerOptions> & Pick<EventConsumerOptions, 'handle'>): Promise<Setup> {
  const ns = uniqueName('kc')
  const clock = testClock().freeze(Date.parse('2030-01-02T03:04:05.000Z'))
  const nats = createNatsClient({ url: NATS_URL, namespace: ns, name: 'kit-consumer-test', streams: ['tasks'] }, log)
  await nats.connect()
  const registry = new Registry()
  const consumer = eventConsumer(
    { nats, log, metrics: registry },
    {
      stream: 'tasks',
      durable: DURABLE,
      types: { [TYPE]: Type.Object({ n: Type.Integer() }) },
      healthy: async () => true,
      now: () => clock.now(),
      ...opts
    }
  )
  const nc = await connect({ servers: NATS_URL })
  t.teardown(async () => {
    await consumer.stop()
    await nats.close()
    await nc.close()
    await deleteStreams(NATS_URL, ns)
  })
  consumer.start()
  await waitFor(() => consumer.running)
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  const tasks = streamNameFor(ns, 'tasks')
  return {
    ns,
    nc,
    clock,
    registry,
    consumer,
    publish: async (data, msgID, given) => {
      if (typeof data === 'string') {
        await js.publish(`${ns}.${TYPE}`, data)
        return null
      }
      const event = given ?? createEvent(TYPE, '/kit-test', data)
      await js.publish(`${ns}.${TYPE}`, JSON.stringify(event), msgID === null ? {} : { msgID: msgID ?? event.id })
      return event
    },
    letters: async () => {
      const stream = streamNameFor(ns, 'deadLetter')
      const { state } = await jsm.streams.info(stream)
      const letters: Array<DeadLetter & { on: string }> = []
      for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq })
        if (m) letters.push({ ...m.json<DeadLetter>(), on: m.subject })
      }
      return letters
    },
    settled: async () => {
      const info = await jsm.consumers.info(tasks, DURABLE)
      return info.num_pending === 0 && info.num_ack_pending === 0
    }
  }
}

/** The event's data, which the consumer checked against the schema of its type. */
function dataOf(e: ConsumedEvent): Data {
  const data = e.event.data
  if (typeof data === 'object' && data !== null && 'n' in data && typeof data.n === 'number') return { n: data.n }
  throw new Error(`unexpected data ${JSON.stringify(data)}`)
}

const summary = (e: ConsumedEvent) => ({
  id: e.event.id,
  source: e.event.source,
  data: e.event.data,
  seq: e.streamSequence,
  deliveries: e.deliveryCount
})

t.test('an event is applied once, acked and counted', async (t) => {
  const applied: ConsumedEvent[] = []
  const s = await setup(t, { handle: async (events) => void applied.push(...events) })
  const event = await s.publish({ n: 1 })
  await waitFor(() => s.consumer.stats.processed === 1)
  await waitFor(() => s.settled())
  t.same(applied, [{ event, mode: 'structured', subject: TYPE, deliveryCount: 1, streamSequence: 1 }])
  t.same(s.consumer.stats, { processed: 1, failed: 0, deadLettered: 0 })
  t.match(await s.registry.metrics(), /event_consumer_processed_total\{consumer="kit-test"\} 1\n/)
})

t.test('a redelivered duplicate (same source and id) reaches the handler again, is acked, and an idempotent handler applies it once', async (t) => {
  const store = new Map<string, Data>()
  const seen: Array<ReturnType<typeof summary>> = []
  let loseFirstCommit = true
  const s = await setup(t, {
    backoffMs: 10,
    maxBackoffMs: 20,
    handle: async (events) => {
      for (const e of events) {
        seen.push(summary(e))
        const key = JSON.stringify([e.event.source, e.event.id])
        if (!store.has(key)) store.set(key, dataOf(e))
      }
      // Committed, but the ack never went: the server delivers it again.
      if (loseFirstCommit) {
        loseFirstCommit = false
        throw new Error('connection lost after commit')
      }
    }
  })
  const event = (await s.publish({ n: 7 }))!
  await waitFor(() => s.consumer.stats.processed === 1)
  // The same event again from a producer that retried after the duplicate window: a second stream message.
  await s.publish({ n: 7 }, `${event.id}-retry`, event)
  await waitFor(() => s.consumer.stats.processed === 2)
  await waitFor(() => s.settled())
  const expected = { id: event.id, source: '/kit-test', data: { n: 7 } }
  t.same(seen, [
    { ...expected, seq: 1, deliveries: 1 },
    { ...expected, seq: 1, deliveries: 2 },
    { ...expected, seq: 2, deliveries: 1 }
  ])
  t.same([...store.values()], [{ n: 7 }], 'applied once')
  t.same(s.consumer.stats, { processed: 2, failed: 1, deadLettered: 0 })
})

t.test('an invalid envelope goes to the dead-letter subject with its reason and is acked; the next event is handled', async (t) => {
  const applied: Data[] = []
  const s = await setup(t, { handle: async (events) => void applied.push(...events.map((e) => dataOf(e))) })
  const raw = JSON.stringify({ specversion: '1.0', type: TYPE, source: '/kit-test', data: { n: 1 } })
  await s.publish(raw)
  await s.publish({ n: 2 })
  await waitFor(() => s.consumer.stats.deadLettered === 1 && s.consumer.stats.processed === 1)
  await waitFor(() => s.settled())
  t.same(await s.letters(), [
    {
      on: `${s.ns}.dlq.${TYPE}`,
      reason: 'INVALID_ENVELOPE',
      detail: 'id: is required',
      subject: TYPE,
      stream: streamNameFor(s.ns, 'tasks'),
      consumer: DURABLE,
      streamSequence: 1,
      deliveryCount: 1,
      deadLetteredAt: '2030-01-02T03:04:05.000Z',
      payload: raw
    }
  ])
  t.same(applied, [{ n: 2 }])
  t.match(await s.registry.metrics(), /event_consumer_dead_lettered_total\{consumer="kit-test",reason="INVALID_ENVELOPE"\} 1\n/)
})

t.test("a failing handler is nak'd and redelivered, and dead-lettered after max deliveries", async (t) => {
  const deliveries: number[] = []
  const s = await setup(t, {
    maxDeliveries: 3,
    backoffMs: 10,
    maxBackoffMs: 20,
    handle: async (events) => {
      for (const e of events) deliveries.push(e.deliveryCount)
      throw new Error('cannot handle n=1')
    }
  })
  const event = (await s.publish({ n: 1 }))!
  await waitFor(() => s.consumer.stats.deadLettered === 1)
  await waitFor(() => s.settled())
  t.same(deliveries, [1, 2, 3])
  const letters = await s.letters()
  t.equal(letters.length, 1)
  t.match(letters[0], { reason: 'HANDLER_FAILED', detail: 'cannot handle n=1', streamSequence: 1, deliveryCount: 3, consumer: DURABLE })
  t.same(JSON.parse(letters[0]!.payload), event)
  t.same(s.consumer.stats, { processed: 0, failed: 3, deadLettered: 1 })
  t.notOk(s.consumer.paused, 'a failing handler is not an outage')
})

t.test('a database outage pauses the consumer instead of dead-lettering; it resumes once the probe answers', async (t) => {
  let databaseUp = false
  const applied: Data[] = []
  const s = await setup(t, {
    maxDeliveries: 1,
    backoffMs: 10,
    maxBackoffMs: 20,
    healthy: async () => databaseUp,
    handle: async (events) => {
      if (!databaseUp) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
      applied.push(...events.map((e) => dataOf(e)))
    }
  })
  await s.publish({ n: 1 })
  await waitFor(() => s.consumer.paused)
  t.notOk(s.consumer.running)
  databaseUp = true
  await waitFor(() => s.consumer.stats.processed === 1)
  await waitFor(() => s.settled())
  t.same(applied, [{ n: 1 }])
  t.same(await s.letters(), [], 'nothing was dead-lettered')
  t.notOk(s.consumer.paused)
})

t.test('a slow handler: every held message gets a progress ack when the clock passes half the ack wait, and none is redelivered', async (t) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const handled: Array<[number, number]> = []
  const s = await setup(t, {
    batchSize: 2,
    ackWaitMs: 10_000,
    handle: async (events) => {
      for (const e of events) handled.push([dataOf(e).n, e.deliveryCount])
      await released
    }
  })
  // Progress acks are published on the ack subject of each delivery: `$JS.ACK.<stream>.<durable>.<deliveries>.<seq>...`.
  const progress = new Map<number, number>()
  const sub = s.nc.subscribe(`$JS.ACK.${streamNameFor(s.ns, 'tasks')}.${DURABLE}.>`, {
    callback: (_err, m) => {
      if (m.string() !== '+WPI') return
      const seq = Number(m.subject.split('.')[5])
      progress.set(seq, (progress.get(seq) ?? 0) + 1)
    }
  })
  t.teardown(() => sub.unsubscribe())
  await s.nc.flush()

  try {
    for (let n = 0; n < 4; n++) await s.publish({ n })
    // The first batch is in the handler and the server has delivered all four: two in flight at most, the rest waiting.
    await waitFor(() => handled.length > 0)
    const jsm = await jetstreamManager(s.nc)
    await waitFor(async () => (await jsm.consumers.info(streamNameFor(s.ns, 'tasks'), DURABLE)).num_ack_pending === 4)
    s.clock.advance(5_000)
    await waitFor(() => progress.size === 4, 20_000)
  } finally {
    release()
  }
  await waitFor(() => s.consumer.stats.processed === 4)
  await waitFor(() => s.settled())
  t.same(
    handled,
    [
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1]
    ],
    'each handled once, on its first delivery'
  )
  t.same(
    [...progress.entries()].sort(([a], [b]) => a - b),
    [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1]
    ],
    'one progress ack each, in flight or waiting'
  )
})
