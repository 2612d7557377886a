import t from 'tap'
import { sharedResources, waitFor } from '@platform/kit/testing'
import { build, consuming, lifecycleScript, migrationsDir, outboxEvents, publisher, sessionStates } from './helper.js'

t.test('two replicas on one durable consumer share the stream and handle each event once', async (t) => {
  const { schema, ns } = await sharedResources(t, { prefix: 'tasks', migrations: migrationsDir })
  // Small batches and a small ack window, so that neither replica can take the whole stream.
  const env = { TASK_EVENTS_BATCH_SIZE: '10', TASK_EVENTS_MAX_ACK_PENDING: '20', TASK_EVENTS_ACK_WAIT_MS: '10000' }
  const a = await build(t, env, { schema, namespace: ns })
  const b = await build(t, env, { schema, namespace: ns })
  await Promise.all([consuming(a.app), consuming(b.app)])
  const pub = await publisher(t, ns)

  const { events, expected } = lifecycleScript('rp', 300)
  for (const e of events) await pub.publish(e.type, e.data, e.time)
  const ca = a.app.taskEvents!
  const cb = b.app.taskEvents!
  await waitFor(() => ca.stats.processed + cb.stats.processed >= events.length, 30_000)

  t.equal(ca.stats.processed + cb.stats.processed, events.length, 'each event handled exactly once across both')
  t.ok(ca.stats.processed > 0 && cb.stats.processed > 0, `both replicas worked (${ca.stats.processed} + ${cb.stats.processed})`)
  t.equal(ca.stats.failed + cb.stats.failed + ca.stats.deadLettered + cb.stats.deadLettered, 0)
  t.same(await sessionStates(schema), expected, 'the final state is exact')

  const outbox = await outboxEvents(schema)
  const created = outbox.filter((e) => e.startsWith('sessions.task.created')).map((e) => e.split(' ')[1])
  const removed = outbox.filter((e) => e.startsWith('sessions.task.removed')).map((e) => e.split(' ')[1])
  t.equal(new Set(created).size, created.length, 'no session was created twice')
  t.equal(new Set(removed).size, removed.length, 'no session was removed twice')
  t.ok(
    removed.every((id) => created.includes(id)),
    'only created sessions were removed'
  )
  const open = expected.map((s) => s.split(':')[0])
  t.same(created.filter((id) => !removed.includes(id)).sort(), open, 'created minus removed is exactly what remains')
})
