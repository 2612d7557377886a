import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import { streamNameFor } from '@platform/kit'
import { TEST_DATABASE_URL, bearer, createTestSchema, startNatsServer, startTcpProxy, testToken, waitFor } from '@platform/kit/testing'
import { build, consuming, lifecycleScript, migrationsDir, publisher, sessionStates, type Publisher, type ScriptEvent } from './helper.js'

/**
 * Whether JetStream has delivered some unacked event more than `times` times: every redelivery (the
 * consumer sequence past the stream sequence) went to an unacked one, so `times` redeliveries per unacked
 * event mean at least one of them got more than that.
 */
async function redeliveredMoreThan(nc: Publisher['nc'], namespace: string, times: number): Promise<boolean> {
  const info = await (await jetstreamManager(nc)).consumers.info(streamNameFor(namespace, 'tasks'), 'task-sessions')
  const redeliveries = info.delivered.consumer_seq - info.delivered.stream_seq
  const unacked = info.delivered.stream_seq - info.ack_floor.stream_seq
  return unacked > 0 && redeliveries >= times * unacked
}

/** Publishes in order, retrying each event until the (possibly restarting) server takes it. */
async function publishAll(pub: Publisher, events: ScriptEvent[]): Promise<void> {
  for (const e of events) await waitFor(() => pub.publish(e.type, e.data, e.time).then(() => true), 20_000, 50)
}

t.test('a NATS restart mid-stream loses nothing: the consumer subscribes again and the final state is exact', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { app, schema, config } = await build(t, { NATS_URL: nats.url })
  await consuming(app)
  const pub = await publisher(t, config.NATS_NAMESPACE, nats.url)
  const { events, expected } = lifecycleScript('nr', 240)
  const half = Math.floor(events.length / 2)
  const consumer = app.taskEvents!

  let stopped = false
  const first = (async () => {
    for (const e of events.slice(0, half)) if (!stopped) await pub.publish(e.type, e.data, e.time)
  })()
  first.catch(() => {}) // whatever the stream did not take is published again below
  await waitFor(() => consumer.stats.processed >= 40, 30_000, 5)
  stopped = true
  await nats.stop()
  t.ok(consumer.stats.processed < events.length, `the restart was mid-stream (${consumer.stats.processed} of ${events.length} handled before it)`)
  await waitFor(() => !consumer.running, 20_000, 10)
  t.pass('the consumer knows it lost NATS')
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.match(ready.json(), { status: 'degraded', checks: { postgres: 'up', nats: 'down', 'consumer:task-sessions': 'down' } })

  await nats.start()
  // A producer retrying after the outage sends the first half again: duplicates change nothing.
  await publishAll(pub, events)
  await waitFor(async () => (await sessionStates(schema)).join() === expected.join(), 30_000, 100)
  t.same(await sessionStates(schema), expected)
  t.ok(consumer.running, 'subscribed again after the restart')
  t.equal(consumer.stats.deadLettered, 0)
  // The outbox drains into the restarted server too.
  await waitFor(async () => (await schema.query('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL')).rows[0]!.n === 0, 10_000)
  t.pass('outbox drained')
})

t.test('Postgres unreachable mid-stream: the consumer pauses, dead-letters nothing, resumes by itself, and loses nothing', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'tasks')
  const proxy = await startTcpProxy(5432)
  t.teardown(async () => {
    await proxy.close()
    await schema.drop()
  })
  const url = new URL(TEST_DATABASE_URL)
  url.port = String(proxy.port)
  // Two deliveries before a failing event would be dead-lettered: the outage outlasts that.
  const { app, config } = await build(t, { DATABASE_URL: url.toString(), TASK_EVENTS_MAX_DELIVERIES: '2' }, { schema })
  await consuming(app)
  const pub = await publisher(t, config.NATS_NAMESPACE)
  const { events, expected } = lifecycleScript('pg', 240)
  const consumer = app.taskEvents!

  const publishing = publishAll(pub, events)
  await waitFor(() => consumer.stats.processed >= 40, 30_000, 5)
  proxy.cut()
  await publishing
  await waitFor(() => consumer.paused, 20_000, 10)

  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json().checks, { postgres: 'down', 'consumer:task-sessions': 'down' })
  const read = await app.inject({ method: 'GET', url: '/api/v1/task-sessions/pg-sh1', headers: bearer(testToken('u1')) })
  t.equal(read.statusCode, 503)
  t.equal(read.headers['retry-after'], '5')
  t.equal(read.json().code, 'DATABASE_UNAVAILABLE')
  const intake = await app.inject({
    method: 'POST',
    url: '/api/v1/task-sessions/events',
    headers: bearer(testToken('producer', ['service'])),
    payload: {
      specversion: '1.0',
      id: '1b4e28ba-2fa1-41d2-883f-0016d3cca427',
      type: 'tasks.scenario.saved',
      source: '/x',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: { shortId: 'zz' }
    }
  })
  t.equal(intake.statusCode, 503, 'HTTP intake answers 503 too')

  // The outage lasts until some event has been delivered more than TASK_EVENTS_MAX_DELIVERIES times.
  await waitFor(() => redeliveredMoreThan(pub.nc, config.NATS_NAMESPACE, 2), 30_000, 100)
  const stuck = consumer.stats.processed
  t.ok(stuck < events.length, `the outage was mid-stream (${stuck} of ${events.length} handled before it)`)
  proxy.restore()

  await waitFor(async () => (await sessionStates(schema)).join() === expected.join(), 30_000, 100)
  t.same(await sessionStates(schema), expected, 'the final state is exact')
  await waitFor(() => !consumer.paused && consumer.running)
  t.equal(consumer.stats.deadLettered, 0, 'an outage never dead-letters a good event')
  t.ok(consumer.stats.failed > 0, 'events failed during the outage and were redelivered')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /event_consumer_paused\{consumer="task-sessions"\} 0/)
  t.notMatch(metrics.body, /event_consumer_dead_lettered_total\{/)
})

t.test('a durable consumer deleted under the service is created again, and events keep flowing', async (t) => {
  const { app, schema, config } = await build(t)
  await consuming(app)
  const pub = await publisher(t, config.NATS_NAMESPACE)
  await pub.publish('tasks.created', { taskId: 'dc-1', taskType: 'image_analysis', shortId: 'dc' })
  await waitFor(async () => (await sessionStates(schema)).length === 1)
  const jsm = await jetstreamManager(pub.nc)
  await jsm.consumers.delete(streamNameFor(config.NATS_NAMESPACE, 'tasks'), 'task-sessions')
  await pub.publish('tasks.created', { taskId: 'dc-2', taskType: 'image_analysis', shortId: 'dc' })
  await waitFor(async () => (await sessionStates(schema)).length === 2, 15_000, 50)
  t.same(await sessionStates(schema), ['dc-1:active', 'dc-2:active'], 'the recreated consumer reads the stream again; the replay changes nothing')
  await waitFor(() => app.taskEvents!.running)
})
