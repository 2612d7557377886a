import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import { Type } from 'typebox'
import { connect } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { createEvent, createEventConsumer, healthPlugin, metricsPlugin, natsPlugin, streamNameFor } from '../src/index.js'
import { sleep, startNatsServer, uniqueName, waitFor } from '../src/testing/index.js'

const TOTAL = 2000
const TYPE = 'tasks.created'

/** JSON log lines of the app, to find the consumer's warning. */
function capture() {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { lines, stream }
}

// SIGKILL: the server's consumer state may lag what it delivered. SIGTERM: a clean shutdown that saved it.
for (const signal of ['SIGKILL', 'SIGTERM'] as const)
  t.test(`a NATS restart (${signal}) mid-load: every event is applied once and the tail is done within 10 s of the reconnect`, async (t) => {
    const server = await startNatsServer()
    t.teardown(() => server.dispose())
    const ns = uniqueName('restart')
    const { lines, stream } = capture()
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(healthPlugin)
    await app.register(metricsPlugin)
    await app.register(natsPlugin, { url: server.url, namespace: ns, name: 'consumer-restart-test', streams: ['tasks'] })

    // The idempotent store: each id is applied once however often it is delivered.
    const applied = new Set<string>()
    const handled = new Map<string, number>()
    const consumer = createEventConsumer(app, {
      stream: 'tasks',
      durable: 'restart-test',
      types: { [TYPE]: Type.Object({ n: Type.Integer() }) },
      batchSize: 50,
      healthy: async () => true,
      handle: async (events) => {
        await sleep(20) // a commit's worth of work: the consumer is busy when the server dies
        for (const { event } of events) {
          handled.set(event.id, (handled.get(event.id) ?? 0) + 1)
          applied.add(event.id)
        }
      }
    })
    t.teardown(() => app.close())

    // Published before the consumer starts, so it works through a backlog while the server dies.
    const ids: string[] = []
    const nc = await connect({ servers: server.url })
    const js = jetstream(nc)
    for (let i = 0; i < TOTAL; i += 100) {
      const events = Array.from({ length: Math.min(100, TOTAL - i) }, (_, k) => createEvent(TYPE, '/test', { n: i + k }))
      ids.push(...events.map((e) => e.id))
      await Promise.all(events.map((e) => js.publish(`${ns}.${TYPE}`, JSON.stringify(e), { msgID: e.id })))
    }
    await nc.close()

    await app.ready()
    await waitFor(() => applied.size >= 500, 30_000, 5)
    await server.stop(signal)
    t.ok(applied.size < TOTAL, `stopped while busy (${applied.size} of ${TOTAL} applied)`)
    await waitFor(() => !app.nats.connected, 15_000)
    await server.start()
    await waitFor(() => app.nats.connected, 30_000)

    // The deadline is generous on purpose: without the fix the tail waits out a 30 s ack wait.
    await waitFor(() => applied.size === TOTAL, 10_000)
    t.equal(applied.size, TOTAL)
    t.same([...applied].sort(), [...ids].sort(), 'every published event was applied once, nothing else')
    t.comment(`${[...handled.values()].filter((n) => n > 1).length} events were delivered more than once (idempotency absorbed them)`)

    const warning = await waitFor(
      () =>
        lines.find(
          (l) =>
            l.msg ===
            'NATS reconnected with unacknowledged messages: those held here go back for redelivery now, the others come back after the ack wait'
        ),
      15_000
    )
    t.equal(warning.level, 40)
    t.equal(warning.consumer, 'restart-test')
    for (const field of ['held', 'inFlight', 'ackPending']) t.type(warning[field], 'number', field)
    t.equal(warning.ackWaitMs, 5000, 'the default ack wait')
    t.ok((warning.held as number) + (warning.inFlight as number) + (warning.ackPending as number) > 0, 'it says how many')

    // Acks lost with the old connection: redelivered after the 5 s ack wait, not the 30 s it used to be.
    await waitFor(async () => {
      const check = await connect({ servers: server.url })
      try {
        const info = await (await jetstreamManager(check)).consumers.info(streamNameFor(ns, 'tasks'), 'restart-test')
        return info.num_ack_pending === 0 && info.num_pending === 0
      } finally {
        await check.close()
      }
    }, 10_000)
    t.ok(consumer.stats.processed >= TOTAL, 'every event was acked once handled')
    t.same((await app.inject({ method: 'GET', url: '/ready' })).json().checks, { nats: 'up', 'consumer:restart-test': 'up' })
  })

t.test('a batch slower than the ack wait is not redelivered: held messages get progress acks', async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.dispose())
  const ns = uniqueName('slow')
  const app = Fastify()
  await app.register(healthPlugin)
  await app.register(metricsPlugin)
  await app.register(natsPlugin, { url: server.url, namespace: ns, name: 'consumer-slow-test', streams: ['tasks'] })
  const deliveries: Array<[number, number]> = []
  createEventConsumer(app, {
    stream: 'tasks',
    durable: 'slow-test',
    types: { [TYPE]: Type.Object({ n: Type.Integer() }) },
    batchSize: 5,
    ackWaitMs: 3000,
    healthy: async () => true,
    handle: async (events) => {
      for (const e of events) deliveries.push([(e.event.data as { n: number }).n, e.deliveryCount])
      await sleep(7000) // more than twice the ack wait: the five waiting behind it are held as long
    }
  })
  t.teardown(() => app.close())

  const nc = await connect({ servers: server.url })
  const js = jetstream(nc)
  for (let n = 0; n < 10; n++) await js.publish(`${ns}.${TYPE}`, JSON.stringify(createEvent(TYPE, '/test', { n })))
  await nc.close()
  await app.ready()

  await waitFor(() => deliveries.length >= 10, 60_000)
  await waitFor(async () => {
    const check = await connect({ servers: server.url })
    try {
      const info = await (await jetstreamManager(check)).consumers.info(streamNameFor(ns, 'tasks'), 'slow-test')
      return info.num_ack_pending === 0 && info.num_pending === 0
    } finally {
      await check.close()
    }
  }, 15_000)
  t.same(
    deliveries,
    Array.from({ length: 10 }, (_, n) => [n, 1]),
    'each event handled once, on its first delivery'
  )
})
