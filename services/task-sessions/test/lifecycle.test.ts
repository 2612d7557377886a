import t from 'tap'
import { collectEvents, waitFor } from '@platform/kit/testing'
import { NATS_URL, T, build, consuming, outboxEvents, publisher, taskIdOf } from './helper.js'

// `settled` counts each event once: no ack window a busy machine could outlast and so redeliver.
const { app, schema, config } = await build(t, { TASK_EVENTS_ACK_WAIT_MS: '60000' })
await consuming(app)
const pub = await publisher(t, config.NATS_NAMESPACE)
const consumer = app.taskEvents!
let sent = 0
const send = (type: string, data: Record<string, unknown>, time?: Date) => {
  sent++
  return pub.publish(type, data, time)
}
/** Sends the exact same envelope again, as a producer retrying after the dedup window would. */
const resend = async (event: { type: string }) => {
  sent++
  await pub.raw(event.type, JSON.stringify(event))
}
const settled = () => waitFor(() => consumer.stats.processed + consumer.stats.deadLettered === sent, 20_000, 10)
const states = async (shortId: string) => {
  const { rows } = await schema.query<{ s: string }>("SELECT task_id || ':' || status AS s FROM task_sessions WHERE short_id = $1 ORDER BY task_id", [
    shortId
  ])
  return rows.map((r) => r.s)
}
const outboxFor = async (prefix: string) => (await outboxEvents(schema)).filter((e) => e.includes(` ${prefix}`))

await t.test('tasks.created with a short id opens an active session carrying the task fields', async (t) => {
  const at = new Date('2026-03-01T10:00:00.123Z')
  await send(T.created, { taskId: 'c1-task', taskType: 'image_analysis', shortId: 'c1', userId: 'u1', productId: 'p9' }, at)
  await settled()
  const { rows } = await schema.query('SELECT task_id, short_id, task_type, user_id, status, created_at FROM task_sessions WHERE short_id = $1', [
    'c1'
  ])
  t.same(rows, [{ task_id: 'c1-task', short_id: 'c1', task_type: 'image_analysis', user_id: 'u1', status: 'active', created_at: at }])
  t.same(await outboxFor('c1'), ['sessions.task.created c1-task'])
})

await t.test('completed, failed and cancelled remove the session of an ordinary task', async (t) => {
  const tasks = [
    ['r1-a', 'video_generation', T.completed],
    ['r1-b', 'finalize_short', T.failed],
    ['r1-c', 'content_analysis', T.cancelled]
  ] as const
  for (const [taskId, taskType] of tasks) await send(T.created, { taskId, taskType, shortId: 'r1' })
  await settled()
  t.same(await states('r1'), ['r1-a:active', 'r1-b:active', 'r1-c:active'])
  for (const [taskId, taskType, end] of tasks) await send(end, { taskId, taskType, shortId: 'r1' })
  await settled()
  t.same(await states('r1'), [])
  t.same(await outboxFor('r1'), [
    'sessions.task.created r1-a',
    'sessions.task.created r1-b',
    'sessions.task.created r1-c',
    'sessions.task.removed r1-a completed',
    'sessions.task.removed r1-b failed',
    'sessions.task.removed r1-c cancelled'
  ])
})

await t.test('scraping tasks and tasks without a short id never get a session', async (t) => {
  await send(T.created, { taskId: 'n1-scrape', taskType: 'scraping', shortId: 'n1', userId: 'u1' })
  await send(T.created, { taskId: 'n1-noshort', taskType: 'image_analysis', userId: 'u1' })
  await send(T.created, { taskId: 'n1-nullshort', taskType: 'data_extraction', shortId: null })
  await send(T.completed, { taskId: 'n1-scrape', taskType: 'scraping', shortId: 'n1' })
  await send(T.failed, { taskId: 'n1-noshort', taskType: 'image_analysis' })
  await settled()
  const { rows } = await schema.query("SELECT count(*)::int AS n FROM task_sessions WHERE task_id LIKE 'n1-%'")
  t.equal(rows[0]!.n, 0)
  t.same(await outboxFor('n1'), [])
})

await t.test('scenario_generation: completed and failed keep the session with that status, cancelled removes it', async (t) => {
  for (const id of ['a', 'b', 'c']) await send(T.created, { taskId: `g1-${id}`, taskType: 'scenario_generation', shortId: 'g1' })
  await settled()
  await send(T.completed, { taskId: 'g1-a', taskType: 'scenario_generation', shortId: 'g1' })
  await send(T.failed, { taskId: 'g1-b', taskType: 'scenario_generation', shortId: 'g1' })
  await send(T.cancelled, { taskId: 'g1-c', taskType: 'scenario_generation', shortId: 'g1' })
  await settled()
  t.same(await states('g1'), ['g1-a:completed', 'g1-b:failed'])
  t.same(await outboxFor('g1'), [
    'sessions.task.created g1-a',
    'sessions.task.created g1-b',
    'sessions.task.created g1-c',
    'sessions.task.removed g1-c cancelled'
  ])
})

await t.test('tasks.scenario.saved removes every scenario_generation session of its short id, and only those', async (t) => {
  const t0 = new Date(Date.now() - 60_000)
  await send(T.created, { taskId: 's1-active', taskType: 'scenario_generation', shortId: 's1' }, t0)
  await send(T.created, { taskId: 's1-done', taskType: 'scenario_generation', shortId: 's1' }, t0)
  await send(T.completed, { taskId: 's1-done', taskType: 'scenario_generation', shortId: 's1' })
  await send(T.created, { taskId: 's1-image', taskType: 'image_analysis', shortId: 's1' }, t0)
  await send(T.created, { taskId: 's2-other', taskType: 'scenario_generation', shortId: 's2' }, t0)
  await settled()
  await send(T.scenarioSaved, { shortId: 's1' })
  await settled()
  t.same(await states('s1'), ['s1-image:active'])
  t.same(await states('s2'), ['s2-other:active'])
  const removed = (await outboxFor('s1')).filter((e) => e.startsWith('sessions.task.removed')).sort()
  t.same(removed, ['sessions.task.removed s1-active scenario_saved', 'sessions.task.removed s1-done scenario_saved'])

  // A scenario task created after the save is a new one; one created before it that arrives late is not.
  await send(T.created, { taskId: 's1-late', taskType: 'scenario_generation', shortId: 's1' }, t0)
  await send(T.created, { taskId: 's1-new', taskType: 'scenario_generation', shortId: 's1' }, new Date(Date.now() + 1000))
  await settled()
  t.same(await states('s1'), ['s1-image:active', 's1-new:active'])
})

await t.test('duplicates and redeliveries change nothing twice', async (t) => {
  const created = await send(T.created, { taskId: 'd1-a', taskType: 'image_analysis', shortId: 'd1' })
  await resend(created)
  await settled()
  t.same(await states('d1'), ['d1-a:active'])
  // Batches see their events' net effect: settle between steps so each step is its own change.
  const done = await send(T.completed, { taskId: 'd1-a', taskType: 'image_analysis', shortId: 'd1' })
  await resend(done)
  await resend(created) // a late duplicate of the creation must not bring the session back
  const scenario = await send(T.created, { taskId: 'd1-s', taskType: 'scenario_generation', shortId: 'd1' })
  await settled()
  const failed = await send(T.failed, { taskId: 'd1-s', taskType: 'scenario_generation', shortId: 'd1' })
  await resend(failed)
  await resend(scenario)
  await settled()
  t.same(await states('d1'), ['d1-s:failed'])
  t.same(await outboxFor('d1'), ['sessions.task.created d1-a', 'sessions.task.removed d1-a completed', 'sessions.task.created d1-s'])
})

await t.test('out of order: a finish that arrives before its creation leaves the right state', async (t) => {
  await send(T.completed, { taskId: 'o1-a', taskType: 'image_analysis', shortId: 'o1' })
  await send(T.cancelled, { taskId: 'o1-b', taskType: 'scenario_generation', shortId: 'o1' })
  await send(T.completed, { taskId: 'o1-c', taskType: 'scenario_generation', shortId: 'o1' })
  await settled()
  await send(T.created, { taskId: 'o1-a', taskType: 'image_analysis', shortId: 'o1' })
  await send(T.created, { taskId: 'o1-b', taskType: 'scenario_generation', shortId: 'o1' })
  await send(T.created, { taskId: 'o1-c', taskType: 'scenario_generation', shortId: 'o1' })
  await settled()
  t.same(await states('o1'), ['o1-c:completed'], 'only the completed scenario stays, as in order')
  t.same(await outboxFor('o1'), ['sessions.task.created o1-c'])
  const { rows } = await schema.query("SELECT task_id, outcome FROM finished_tasks WHERE task_id LIKE 'o1-%' ORDER BY task_id")
  t.same(rows, [
    { task_id: 'o1-a', outcome: 'completed' },
    { task_id: 'o1-b', outcome: 'cancelled' },
    { task_id: 'o1-c', outcome: 'completed' }
  ])
})

await t.test('sessions.task.created and sessions.task.removed reach NATS through the outbox', async (t) => {
  const collector = await collectEvents(NATS_URL, config.NATS_NAMESPACE, 'sessions')
  t.teardown(() => collector.close())
  await send(T.created, { taskId: 'e1-a', taskType: 'save_scenario', shortId: 'e1', userId: 'u7' })
  await settled()
  await send(T.completed, { taskId: 'e1-a', taskType: 'save_scenario', shortId: 'e1', userId: 'u7' })
  await settled()
  const mine = await waitFor(() => {
    const e = collector.events.filter((x) => taskIdOf(x.data) === 'e1-a')
    return e.length === 2 ? e : null
  })
  t.match(mine[0], {
    specversion: '1.0',
    type: 'sessions.task.created',
    source: '/task-sessions',
    data: { taskId: 'e1-a', shortId: 'e1', taskType: 'save_scenario', userId: 'u7', status: 'active' }
  })
  t.match(mine[1], { type: 'sessions.task.removed', data: { taskId: 'e1-a', status: 'active', reason: 'completed' } })
})

t.equal(consumer.stats.deadLettered, 0, 'no good event was dead-lettered')
t.equal(consumer.stats.failed, 0)
