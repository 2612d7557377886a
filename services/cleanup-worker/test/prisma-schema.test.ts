import t from 'tap'
import { createTestSchema, describeColumns, expectedMigrations, prismaOnSchema, recordedMigrations } from '@platform/kit/testing'
import { PrismaClient } from '../src/generated/prisma/client.js'
import { migrationsDir } from './helper.js'

t.test('the migrated database and the Prisma schema agree: every model is written and read through the client', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'cleanup')
  const prisma = await prismaOnSchema(schema, (adapter) => new PrismaClient({ adapter }))
  t.teardown(async () => {
    await prisma.$disconnect()
    await schema.drop()
  })

  const run = await prisma.cleanupRun.create({
    data: {
      id: '6f9619ff-8b86-4d01-b42d-00cf4fc964ff',
      jobId: 'repeat:cleanup-login_sessions:1',
      kind: 'login_sessions',
      trigger: 'scheduled',
      status: 'succeeded',
      olderThanSeconds: 60,
      startedAt: new Date('2026-01-01T00:00:00Z'),
      finishedAt: new Date('2026-01-01T00:00:01Z'),
      removed: 5,
      errors: 1,
      attempts: 2,
      error: 'boom',
      details: { batches: 1, durationMs: 7 }
    }
  })
  t.same(await prisma.cleanupRun.findUniqueOrThrow({ where: { jobId: 'repeat:cleanup-login_sessions:1' } }), run)
  t.type(run.createdAt, Date)
  t.same(run.details, { batches: 1, durationMs: 7 })
  for (const kind of ['task_sessions', 'chat_sessions', 'named_sessions'] as const) {
    for (const status of ['queued', 'running', 'retrying', 'failed'] as const) {
      await prisma.cleanupRun.create({ data: { id: crypto.randomUUID(), jobId: `${kind}-${status}`, kind, trigger: 'manual', status } })
    }
  }
  t.equal(await prisma.cleanupRun.count(), 13, 'every kind, trigger and status is accepted')

  const event = await prisma.outboxEvent.create({
    data: { id: '7f9619ff-8b86-4d01-b42d-00cf4fc964ff', type: 'cleanup.run.completed', envelope: { a: [1, 'x'] } }
  })
  const sent = await prisma.outboxEvent.update({
    where: { id: event.id },
    data: { sentAt: new Date('2026-01-01T00:00:00Z'), attempts: 2, lastError: 'boom' }
  })
  t.same(await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } }), sent)
  t.equal(typeof sent.seq, 'bigint')

  t.same(await recordedMigrations(schema), await expectedMigrations(migrationsDir), 'recorded as prisma migrate deploy records them')
})

t.test('every column of the Prisma schema exists with its type, and no other', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'cleanup')
  t.teardown(() => schema.drop())
  t.same(await describeColumns(schema), [
    'cleanup_runs.id uuid',
    'cleanup_runs.job_id character varying',
    'cleanup_runs.kind CleanupKind',
    'cleanup_runs.trigger CleanupTrigger',
    'cleanup_runs.status CleanupRunStatus',
    'cleanup_runs.older_than_seconds integer null',
    'cleanup_runs.created_at timestamp with time zone',
    'cleanup_runs.started_at timestamp with time zone null',
    'cleanup_runs.finished_at timestamp with time zone null',
    'cleanup_runs.removed integer',
    'cleanup_runs.errors integer',
    'cleanup_runs.attempts integer',
    'cleanup_runs.error text null',
    'cleanup_runs.details jsonb null',
    'outbox.seq bigint',
    'outbox.id uuid',
    'outbox.type character varying',
    'outbox.envelope jsonb',
    'outbox.created_at timestamp with time zone',
    'outbox.sent_at timestamp with time zone null',
    'outbox.attempts integer',
    'outbox.last_error text null'
  ])
  const { rows: enums } = await schema.query<{ name: string; labels: string[] }>(
    `SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = $1 GROUP BY t.typname ORDER BY t.typname`,
    [schema.schema]
  )
  t.same(
    enums,
    [
      { name: 'CleanupKind', labels: ['login_sessions', 'task_sessions', 'chat_sessions', 'named_sessions'] },
      { name: 'CleanupRunStatus', labels: ['queued', 'running', 'retrying', 'succeeded', 'failed'] },
      { name: 'CleanupTrigger', labels: ['scheduled', 'manual'] }
    ],
    'the enums match the contract (CleanupKinds, CleanupRunStatuses, CleanupTriggers)'
  )
})
