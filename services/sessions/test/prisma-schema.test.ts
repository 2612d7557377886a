import t from 'tap'
import { createTestSchema, describeColumns, expectedMigrations, prismaOnSchema, recordedMigrations } from '@platform/kit/testing'
import { PrismaClient } from '../src/generated/prisma/client.js'
import { migrationsDir } from './helper.js'

t.test('the migrated database and the Prisma schema agree: every model is written and read through the client', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'sessions')
  const prisma = await prismaOnSchema(schema, (adapter) => new PrismaClient({ adapter }))
  t.teardown(async () => {
    await prisma.$disconnect()
    await schema.drop()
  })

  const session = await prisma.namedSession.create({ data: { userId: 'u1', title: 'every field', active: true } })
  const readBack = await prisma.namedSession.findUniqueOrThrow({ where: { userId_title: { userId: 'u1', title: 'every field' } } })
  t.same(readBack, session)
  t.equal(readBack.active, true)
  t.type(readBack.createdAt, Date)
  const updated = await prisma.namedSession.update({ where: { id: session.id }, data: { active: false } })
  t.ok(updated.updatedAt >= session.updatedAt, '@updatedAt is maintained')

  const event = await prisma.outboxEvent.create({
    data: { id: '6f9619ff-8b86-4d01-b42d-00cf4fc964ff', type: 'sessions.named.created', envelope: { a: [1, 'x'] } }
  })
  const sent = await prisma.outboxEvent.update({
    where: { id: event.id },
    data: { sentAt: new Date('2026-01-01T00:00:00Z'), attempts: 2, lastError: 'boom' }
  })
  t.same(await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } }), sent)
  t.equal(typeof sent.seq, 'bigint')
  t.same(sent.envelope, { a: [1, 'x'] })

  const login = await prisma.loginSession.create({
    data: {
      id: 'sid-1',
      userId: 'u1',
      ipAddress: '10.0.0.1',
      lastIpAddress: '10.0.0.2',
      ipChanges: 1,
      userAgent: 'ua',
      deviceType: 'desktop',
      browser: 'Chrome 120',
      os: 'Linux',
      requestCount: 3,
      chatInteractions: 2,
      endedAt: new Date('2026-02-01T00:00:00Z'),
      endReason: 'logout'
    }
  })
  t.same(await prisma.loginSession.findUniqueOrThrow({ where: { id: 'sid-1' } }), login)
  const violation = await prisma.loginViolation.create({ data: { sessionId: 'sid-1', userId: 'u1', reason: 'request_rate', detail: 'd' } })
  t.same(await prisma.loginViolation.findUniqueOrThrow({ where: { id: violation.id } }), violation)
  const processed = await prisma.processedEvent.create({ data: { source: 'https://producer.example/chat', id: 'evt-1' } })
  t.same(await prisma.processedEvent.findUniqueOrThrow({ where: { source_id: { source: processed.source, id: 'evt-1' } } }), processed)

  t.same(await recordedMigrations(schema), await expectedMigrations(migrationsDir), 'recorded as prisma migrate deploy records them')
})

t.test('every column of the Prisma schema exists with its type, and no other', async (t) => {
  const schema = await createTestSchema(migrationsDir, 'sessions')
  t.teardown(() => schema.drop())
  t.same(await describeColumns(schema), [
    'login_sessions.id character varying',
    'login_sessions.user_id character varying',
    'login_sessions.ip_address character varying',
    'login_sessions.last_ip_address character varying',
    'login_sessions.ip_changes integer',
    'login_sessions.user_agent character varying',
    'login_sessions.device_type character varying',
    'login_sessions.browser character varying',
    'login_sessions.os character varying',
    'login_sessions.created_at timestamp with time zone',
    'login_sessions.last_seen_at timestamp with time zone',
    'login_sessions.request_count integer',
    'login_sessions.chat_interactions integer',
    'login_sessions.ended_at timestamp with time zone null',
    'login_sessions.end_reason character varying null',
    'login_violations.id bigint',
    'login_violations.session_id character varying',
    'login_violations.user_id character varying',
    'login_violations.reason character varying',
    'login_violations.detail character varying',
    'login_violations.created_at timestamp with time zone',
    'named_sessions.id uuid',
    'named_sessions.user_id character varying',
    'named_sessions.title character varying',
    'named_sessions.active boolean',
    'named_sessions.created_at timestamp with time zone',
    'named_sessions.updated_at timestamp with time zone',
    'outbox.seq bigint',
    'outbox.id uuid',
    'outbox.type character varying',
    'outbox.envelope jsonb',
    'outbox.created_at timestamp with time zone',
    'outbox.sent_at timestamp with time zone null',
    'outbox.attempts integer',
    'outbox.last_error text null',
    'processed_events.id text',
    'processed_events.processed_at timestamp with time zone',
    'processed_events.source text'
  ])
})
