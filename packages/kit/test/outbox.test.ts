import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { createEvent, createNatsClient, createOutboxRelay, createPool, outboxRow, type NatsClient, type OutboxRelay } from '../src/index.js'
import {
  collectEvents,
  createTestSchema,
  deleteStreams,
  startNatsServer,
  testClock,
  uniqueName,
  waitFor,
  type EventCollector,
  type TestClock,
  type TestSchema
} from '../src/testing/index.js'

// The outbox relay without Fastify: a throwaway schema with only the outbox table, and NATS (the shared
// one, or a server of the test's own where it must go away).

const NATS_URL = 'nats://127.0.0.1:4222'
const TYPE = 'tasks.created'
const migrationsDir = join(import.meta.dirname, 'fixtures', 'outbox-migrations')
const log = pino({ level: 'silent' })

// pollMs is long: passes run when a test drains or kicks, never behind its back.
interface Setup {
  schema: TestSchema
  nats: NatsClient
  relay: OutboxRelay
  collector: EventCollector
  clock: TestClock
  /** Writes outbox rows as a service does in its transaction; returns their event ids. */
  write(...ns: number[]): Promise<string[]>
  /** Each row as [n, sent, attempts], in seq order. */
  rows(): Promise<Array<[number, boolean, number]>>
}

async function setup(t: Test, url = NATS_URL, retentionSeconds = 3600): Promise<Setup> {
  const schema = await createTestSchema(migrationsDir, 'kob')
  const ns = uniqueName('kob')
  const nats = createNatsClient({ url, namespace: ns, name: 'kit-outbox-test', streams: ['tasks'] }, log)
  await nats.connect()
  const pool = createPool({ url: schema.url, schema: schema.schema, poolSize: 2, timeoutMs: 2000 })
  const clock = testClock().freeze()
  const relay = createOutboxRelay({ pool, schema: schema.schema, nats, log, batchSize: 2, pollMs: 60_000, retentionSeconds, now: () => clock.now() })
  const collector = await collectEvents(url, ns, 'tasks')
  t.teardown(async () => {
    await relay.stop()
    await collector.close()
    await nats.close()
    await pool.end()
    await schema.drop()
    await deleteStreams(url, ns).catch(() => {}) // a test's own server may be gone already, its streams with it
  })
  return {
    schema,
    nats,
    relay,
    collector,
    clock,
    write: async (...ns) => {
      const rows = ns.map((n) => outboxRow(createEvent(TYPE, '/kit-test', { n })))
      for (const r of rows) await schema.query('INSERT INTO outbox (id, type, envelope) VALUES ($1, $2, $3)', [r.id, r.type, r.envelope])
      return rows.map((r) => r.id)
    },
    rows: async () => {
      const { rows } = await schema.query<{ n: number; sent: boolean; attempts: number }>(
        "SELECT (envelope->'data'->>'n')::int AS n, sent_at IS NOT NULL AS sent, attempts FROM outbox ORDER BY seq"
      )
      return rows.map((r) => [r.n, r.sent, r.attempts])
    }
  }
}

/** Each collected event as [id, n]. */
function published(c: EventCollector): Array<[string, unknown]> {
  return c.events.map((e) => [e.id, typeof e.data === 'object' && e.data !== null && 'n' in e.data ? e.data.n : undefined])
}

t.test('rows are published in seq order, once each, and marked sent', async (t) => {
  const s = await setup(t)
  const ids = await s.write(0, 1, 2, 3, 4)
  t.equal(await s.relay.drain(), 5, 'three batches of at most two')
  await waitFor(() => s.collector.events.length === 5)
  t.same(
    published(s.collector),
    ids.map((id, n) => [id, n])
  )
  t.same(await s.rows(), [
    [0, true, 0],
    [1, true, 0],
    [2, true, 0],
    [3, true, 0],
    [4, true, 0]
  ])
  t.equal(await s.relay.drain(), 0, 'nothing left to publish')
  await waitFor(() => s.collector.settled())
  t.equal(await s.collector.stored(), 5)
})

t.test('while NATS is away rows stay in the outbox; once it is back they are published in order', async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.dispose())
  const s = await setup(t, server.url)
  s.nats.onConnect(() => s.relay.kick())
  s.relay.start()
  const ids = await s.write(0)
  s.relay.kick()
  await waitFor(() => s.collector.events.length === 1)

  await server.stop()
  await waitFor(() => !s.nats.connected)
  ids.push(...(await s.write(1, 2, 3)))
  t.equal(await s.relay.drain(), 0, 'a pass while NATS is down publishes nothing')
  t.same(
    await s.rows(),
    [
      [0, true, 0],
      [1, false, 0],
      [2, false, 0],
      [3, false, 0]
    ],
    'the backlog waits'
  )

  await server.start()
  await waitFor(() => s.collector.events.length === 4, 30_000)
  t.same(
    published(s.collector),
    ids.map((id, n) => [id, n]),
    'every event, in the order written'
  )
  await waitFor(async () => (await s.rows()).every(([, sent]) => sent), 20_000)
  t.equal(await s.collector.stored(), 4, 'none was published twice')
})

t.test('a relay pointed at a port where nothing listens keeps every row', async (t) => {
  const server = await startNatsServer()
  await server.dispose() // a free port, now closed
  const schema = await createTestSchema(migrationsDir, 'kob')
  t.teardown(() => schema.drop())
  const nats = createNatsClient({ url: server.url, namespace: uniqueName('kob'), name: 'kit-outbox-test', streams: [] }, log)
  t.teardown(() => nats.close())
  await nats.connect()
  const pool = createPool({ url: schema.url, schema: schema.schema, poolSize: 2, timeoutMs: 2000 })
  t.teardown(() => pool.end())
  const relay = createOutboxRelay({ pool, schema: schema.schema, nats, log, batchSize: 2, pollMs: 50, retentionSeconds: 3600 })
  const row = outboxRow(createEvent(TYPE, '/kit-test', { n: 0 }))
  await schema.query('INSERT INTO outbox (id, type, envelope) VALUES ($1, $2, $3)', [row.id, row.type, row.envelope])
  t.notOk(nats.connected)
  t.equal(await relay.drain(), 0)
  await relay.stop()
  const { rows } = await schema.query('SELECT id, sent_at, attempts FROM outbox')
  t.same(rows, [{ id: row.id, sent_at: null, attempts: 0 }])
})

t.test('retention purges sent rows older than it after a pass, at most once a minute by the relay clock', async (t) => {
  const s = await setup(t, NATS_URL, 3600)
  await s.write(0, 1, 2, 3)
  // Rows 0 and 1 were sent two hours ago, row 2 ten minutes ago; row 3 waits.
  await s.schema.query("UPDATE outbox SET sent_at = now() - interval '2 hours' WHERE (envelope->'data'->>'n')::int < 2")
  await s.schema.query("UPDATE outbox SET sent_at = now() - interval '10 minutes' WHERE (envelope->'data'->>'n')::int = 2")
  t.equal(await s.relay.drain(), 1)
  t.same(
    await s.rows(),
    [
      [2, true, 0],
      [3, true, 0]
    ],
    'the old sent rows are gone, the recent and the new one stay'
  )

  await s.schema.query("UPDATE outbox SET sent_at = now() - interval '2 hours' WHERE (envelope->'data'->>'n')::int = 2")
  t.equal(await s.relay.drain(), 0)
  t.same(
    await s.rows(),
    [
      [2, true, 0],
      [3, true, 0]
    ],
    'not again within the minute'
  )
  s.clock.advance(60_000)
  t.equal(await s.relay.drain(), 0)
  t.same(await s.rows(), [[3, true, 0]], 'a minute later it purges again')
})

t.test('a row NATS refuses counts an attempt and keeps its place: the rows before it are sent, it and the rest wait', async (t) => {
  const s = await setup(t)
  await s.write(0)
  const refused = outboxRow(createEvent('nowhere.created', '/kit-test', { n: 1 }))
  await s.schema.query('INSERT INTO outbox (id, type, envelope) VALUES ($1, $2, $3)', [refused.id, refused.type, refused.envelope])
  await s.write(2)
  t.equal(await s.relay.drain(), 0, 'the pass failed')
  t.same(await s.rows(), [
    [0, true, 0],
    [1, false, 1],
    [2, false, 0]
  ])
  const { rows } = await s.schema.query<{ last_error: string }>('SELECT last_error FROM outbox WHERE id = $1', [refused.id])
  // No stream takes its subject: nats.js reads the server's "no responders" as JetStream missing.
  t.same(rows, [{ last_error: 'jetstream is not enabled' }])
})
