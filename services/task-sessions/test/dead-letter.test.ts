import t from 'tap'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { jetstreamManager } from '@nats-io/jetstream'
import { TaskLifecycleData } from '@platform/contracts'
import { createEventConsumer, fastifyOptions, loadConfig, platformPlugins, streamNameFor, type EventConsumer } from '@platform/kit'
import { TEST_JWT_SECRET, sharedResources, waitFor, type Teardown } from '@platform/kit/testing'
import { ConfigSchema } from '../src/config.js'
import { T, build, consuming, deadLetters, migrationsDir, publisher, sessionStates, taskIdOf } from './helper.js'

t.test('malformed messages go to the dead-letter subject with their reason, are acked, and the next event is handled', async (t) => {
  // Every letter must come from a first delivery: no ack window a busy machine could outlast.
  const { app, schema, config } = await build(t, { TASK_EVENTS_ACK_WAIT_MS: '60000' })
  await consuming(app)
  const ns = config.NATS_NAMESPACE
  const pub = await publisher(t, ns)
  const good = (taskId: string) => ({ taskId, taskType: 'image_analysis', shortId: 'm1' })

  await pub.raw(T.created, '{"specversion": "1.0", "id": ')
  await pub.publish(T.created, { taskType: 'image_analysis', shortId: 'm1' })
  await pub.raw('tasks.started', JSON.stringify({ ...(await pub.publish(T.created, good('m1-a'))), type: 'tasks.started' }))
  await pub.raw(T.completed, JSON.stringify({ specversion: '1.0', type: T.completed, data: good('m1-a') }))
  await pub.raw(T.created, JSON.stringify({ ...(await pub.publish(T.created, good('m1-b'))), type: T.completed }))
  await pub.publish(T.created, good('m1-c'))

  const consumer = app.taskEvents!
  await waitFor(() => consumer.stats.deadLettered === 5 && consumer.stats.processed === 3)
  t.same(await sessionStates(schema), ['m1-a:active', 'm1-b:active', 'm1-c:active'], 'the good events around them were handled')

  const letters = await deadLetters(pub.nc, ns)
  t.same(
    letters.map((l) => [l.on, l.reason, l.subject, l.consumer, l.deliveryCount]),
    [
      [`${ns}.dlq.tasks.created`, 'INVALID_JSON', 'tasks.created', 'task-sessions', 1],
      [`${ns}.dlq.tasks.created`, 'INVALID_DATA', 'tasks.created', 'task-sessions', 1],
      [`${ns}.dlq.tasks.started`, 'UNKNOWN_TYPE', 'tasks.started', 'task-sessions', 1],
      [`${ns}.dlq.tasks.completed`, 'INVALID_ENVELOPE', 'tasks.completed', 'task-sessions', 1],
      [`${ns}.dlq.tasks.created`, 'INVALID_ENVELOPE', 'tasks.created', 'task-sessions', 1]
    ]
  )
  t.equal(letters[0]!.payload, '{"specversion": "1.0", "id": ', 'the original payload is kept as sent')
  t.match(letters[1]!.detail, /taskId/)
  t.match(letters[2]!.detail, /no handler for event type "tasks.started"/)
  t.equal(letters[3]!.detail, 'id: is required')
  t.equal(letters[4]!.detail, 'type: "tasks.completed" does not match subject "tasks.created"')
  t.equal(letters[0]!.stream, streamNameFor(ns, 'tasks'))

  const info = await (await jetstreamManager(pub.nc)).consumers.info(streamNameFor(ns, 'tasks'), 'task-sessions')
  t.equal(info.num_ack_pending, 0, 'dead-lettered messages were acked')
  t.equal(info.num_pending, 0)

  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /event_consumer_dead_lettered_total\{consumer="task-sessions",reason="INVALID_ENVELOPE"\} 2/)
  t.match(metrics.body, /event_consumer_processed_total\{consumer="task-sessions"\} 3/)
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.same(ready.json(), { status: 'ready', checks: { postgres: 'up', nats: 'up', 'consumer:task-sessions': 'up' } })
})

/** An app with only the kit's plugins and a consumer whose handler fails on every `poison-*` task. */
async function kitConsumer(t: Teardown) {
  const { schema, ns } = await sharedResources(t, { prefix: 'kitc', migrations: migrationsDir })
  await schema.query('CREATE TABLE handled (event_id uuid PRIMARY KEY, task_id text NOT NULL)')
  const config = loadConfig(ConfigSchema, {
    LOG_LEVEL: 'silent',
    DATABASE_URL: schema.url,
    DATABASE_SCHEMA: schema.schema,
    DATABASE_POOL_SIZE: '2',
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET
  })
  const app = Fastify(fastifyOptions(config))
  let consumer: EventConsumer | undefined
  await app.register(
    fp(async (fastify) => {
      await fastify.register(platformPlugins, { config, postgres: true, nats: { streams: [] } })
      consumer = createEventConsumer(fastify, {
        stream: 'tasks',
        durable: 'kit-test',
        types: { [T.created]: TaskLifecycleData },
        maxDeliveries: 3,
        backoffMs: 20,
        maxBackoffMs: 100,
        handle: async (events) => {
          const taskIds = events.map((e) => taskIdOf(e.event.data) ?? '')
          const poison = taskIds.find((id) => id.startsWith('poison'))
          if (poison) throw new Error(`cannot handle ${poison}`)
          await fastify.db.pool.query('INSERT INTO handled (event_id, task_id) SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING', [
            events.map((e) => e.event.id),
            taskIds
          ])
        }
      })
    })
  )
  await app.ready()
  t.teardown(() => app.close())
  if (!consumer) throw new Error('the consumer plugin did not run')
  return { schema, ns, consumer }
}

t.test(
  'kit consumer: an event whose handler keeps failing while the database is healthy is dead-lettered after max deliveries; its batch-mates are handled once',
  async (t) => {
    const { schema, ns, consumer } = await kitConsumer(t)
    await waitFor(() => consumer.running)
    const pub = await publisher(t, ns)

    // Published before the consumer pulls again, so they arrive as one batch.
    const events = []
    for (const taskId of ['ok-1', 'poison-1', 'ok-2']) events.push(await pub.publish(T.created, { taskId, taskType: 'scraping' }))
    await waitFor(() => consumer.stats.deadLettered === 1 && consumer.stats.processed === 2)

    const { rows } = await schema.query('SELECT task_id FROM handled ORDER BY task_id')
    t.same(rows, [{ task_id: 'ok-1' }, { task_id: 'ok-2' }])
    t.equal(consumer.stats.failed, 3, 'the poison event failed on each of its 3 deliveries')
    const letters = await deadLetters(pub.nc, ns)
    t.equal(letters.length, 1)
    t.match(letters[0], {
      on: `${ns}.dlq.tasks.created`,
      reason: 'HANDLER_FAILED',
      detail: 'cannot handle poison-1',
      deliveryCount: 3,
      consumer: 'kit-test'
    })
    t.equal(JSON.parse(letters[0]!.payload).id, events[1]!.id)
    t.notOk(consumer.paused, 'a failing handler is not an outage')
  }
)
