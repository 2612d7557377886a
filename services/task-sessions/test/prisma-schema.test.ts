import t from 'tap'
import { createTestSchema, describeColumns, expectedMigrations, prismaOnSchema, recordedMigrations } from '@platform/kit/testing'
import { PrismaClient } from '../src/generated/prisma/client.js'
import { migrationsDir } from './helper.js'

t.test('the migrated database and the Prisma schema agree: every model is written and read through the client', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'tasks')
  const prisma = await prismaOnSchema(schema, (adapter) => new PrismaClient({ adapter }))
  t.teardown(async () => {
    await prisma.$disconnect()
    await schema.drop()
  })

  const session = await prisma.taskSession.create({
    data: { taskId: 't-1', shortId: 's-1', taskType: 'scenario_generation', userId: 'u1', createdAt: new Date('2026-01-01T00:00:00Z') }
  })
  t.equal(session.status, 'active')
  t.equal(typeof session.id, 'bigint')
  t.same(await prisma.taskSession.findUniqueOrThrow({ where: { taskId: 't-1' } }), session)
  const updated = await prisma.taskSession.update({ where: { taskId: 't-1' }, data: { status: 'failed', userId: null } })
  t.ok(updated.updatedAt >= session.updatedAt, '@updatedAt is maintained')
  t.equal(updated.userId, null)

  const finished = await prisma.finishedTask.create({ data: { taskId: 't-1', taskType: 'scenario_generation', outcome: 'removed' } })
  t.same(await prisma.finishedTask.findUniqueOrThrow({ where: { taskId: 't-1' } }), finished)
  const save = await prisma.scenarioSave.create({ data: { shortId: 's-1', savedAt: new Date('2026-01-02T00:00:00Z') } })
  t.same(await prisma.scenarioSave.findUniqueOrThrow({ where: { shortId: 's-1' } }), save)
  const event = await prisma.outboxEvent.create({
    data: { id: '6f9619ff-8b86-4d01-b42d-00cf4fc964ff', type: 'sessions.task.created', envelope: { a: [1, 'x'] } }
  })
  t.same(await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } }), event)
  const receipt = await prisma.eventReceipt.create({ data: { source: 'https://producer.example/tasks', id: 'evt 1' } })
  t.same(await prisma.eventReceipt.findUniqueOrThrow({ where: { source_id: { source: receipt.source, id: 'evt 1' } } }), receipt)

  t.same(await recordedMigrations(schema), await expectedMigrations(migrationsDir), 'recorded as prisma migrate deploy records them')
})

t.test('every column and index of the Prisma schema exists, and no other', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'tasks')
  t.teardown(() => schema.drop())
  t.same(await describeColumns(schema), [
    'event_receipts.source text',
    'event_receipts.id text',
    'event_receipts.received_at timestamp with time zone',
    'finished_tasks.task_id character varying',
    'finished_tasks.task_type TaskType',
    'finished_tasks.outcome TaskOutcome',
    'finished_tasks.finished_at timestamp with time zone',
    'outbox.seq bigint',
    'outbox.id uuid',
    'outbox.type character varying',
    'outbox.envelope jsonb',
    'outbox.created_at timestamp with time zone',
    'outbox.sent_at timestamp with time zone null',
    'outbox.attempts integer',
    'outbox.last_error text null',
    'scenario_saves.short_id character varying',
    'scenario_saves.saved_at timestamp with time zone',
    'scenario_saves.recorded_at timestamp with time zone',
    'task_sessions.id bigint',
    'task_sessions.task_id character varying',
    'task_sessions.short_id character varying',
    'task_sessions.task_type TaskType',
    'task_sessions.user_id character varying null',
    'task_sessions.status TaskSessionStatus',
    'task_sessions.created_at timestamp with time zone',
    'task_sessions.updated_at timestamp with time zone'
  ])
  const indexes = await schema.query<{ indexname: string }>(
    "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'task_sessions' ORDER BY indexname",
    [schema.schema]
  )
  t.same(
    indexes.rows.map((r) => r.indexname),
    [
      'task_sessions_created_at_idx',
      'task_sessions_finished_created_at_idx',
      'task_sessions_pkey',
      'task_sessions_short_id_created_at_id_idx',
      'task_sessions_status_idx',
      'task_sessions_task_id_key',
      'task_sessions_task_type_idx',
      'task_sessions_user_id_idx'
    ]
  )
})
