import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import {
  NamedSessionSubjects,
  type CleanupKindStats,
  type CleanupReply,
  type NamedSession as NamedSessionDto,
  type NamedSessionList
} from '@platform/contracts'
import { createEvent, keyset, keysetPage, outboxRow } from '@platform/kit'
import { Prisma, type NamedSession, type PrismaClient } from '../generated/prisma/client.js'
import { inBatches } from '../domain/cleanup-batches.js'
import { ActiveSessionDeletionError, DuplicateTitleError, NoActiveSessionError, SessionNotFoundError } from '../domain/errors.js'
import type { ActiveSessionCache } from './active-cache.js'

type Tx = Prisma.TransactionClient

/** The result of an operation plus whether the cache could not be used for it. */
export interface Outcome<T> {
  value: T
  degraded: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    namedSessions: NamedSessionService
  }
}

export function toDto(s: NamedSession): NamedSessionDto {
  return {
    id: s.id,
    userId: s.userId,
    title: s.title,
    active: s.active,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString()
  }
}

const isUniqueViolation = (err: unknown) => err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002'

export interface NamedSessionService {
  list(userId: string, limit: number, cursor?: string): Promise<NamedSessionList>
  activeId(userId: string): Promise<Outcome<string>>
  create(userId: string, title: string): Promise<Outcome<NamedSessionDto>>
  activate(userId: string, title: string): Promise<Outcome<NamedSessionDto>>
  remove(userId: string, title: string): Promise<void>
  /** Figures for the cleanup worker: all sessions, those past `maxAgeSeconds`, mean age of the inactive ones. */
  stats(maxAgeSeconds: number | undefined): Promise<CleanupKindStats>
  /** Deletes inactive sessions unchanged for `olderThanSeconds`, in batches, each with its event. */
  cleanup(olderThanSeconds: number, batchSize: number): Promise<CleanupReply>
}

/** What the named-session operations use: plain clients, no Fastify. */
export interface NamedSessionDeps {
  prisma: PrismaClient
  db: FastifyInstance['db']
  activeCache: Pick<ActiveSessionCache, 'get' | 'fill' | 'set'>
  outbox: { kick(): void }
  log: FastifyBaseLogger
}

interface Ctx extends NamedSessionDeps {
  source: string
}

/** The named-session service on its clients: what the plugin decorates `fastify.namedSessions` with. */
export function createNamedSessions(deps: NamedSessionDeps, opts: { source: string }): NamedSessionService {
  const ctx: Ctx = { ...deps, source: opts.source }
  return {
    list: (userId, limit, cursor) => list(deps.prisma, userId, limit, cursor),
    activeId: (userId) => activeId(ctx, userId),
    create: (userId, title) => create(ctx, userId, title),
    activate: (userId, title) => activate(ctx, userId, title),
    remove: (userId, title) => remove(ctx, userId, title),
    stats: (maxAgeSeconds) => stats(deps.prisma, maxAgeSeconds),
    cleanup: (olderThanSeconds, batchSize) => cleanup(ctx, olderThanSeconds, batchSize)
  }
}

/** Serializes one user's writes: with the partial unique index, exactly one session stays active. */
const lockUser = (tx: Tx, userId: string) => tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${'named:' + userId}))`

/** Deactivates the user's active session unless it is `exceptId`; returns its id (null for none). */
async function deactivate(tx: Tx, userId: string, exceptId?: string): Promise<string | null> {
  const previous = await tx.namedSession.findFirst({ where: { userId, active: true }, select: { id: true } })
  if (previous && previous.id !== exceptId) {
    await tx.namedSession.update({ where: { id: previous.id }, data: { active: false } })
  }
  return previous?.id ?? null
}

const eventRow = (source: string, type: string, s: Pick<NamedSession, 'id' | 'userId' | 'title'>, previousActiveId: string | null) =>
  outboxRow(createEvent(type, source, { sessionId: s.id, userId: s.userId, title: s.title, previousActiveId }))

const emit = (ctx: Ctx, tx: Tx, type: string, s: NamedSession, previousActiveId: string | null) =>
  tx.outboxEvent.create({ data: eventRow(ctx.source, type, s, previousActiveId) })

/** After a commit that changed the active session: publish, then cache the new id. True when the cache failed. */
async function afterCommit(ctx: Ctx, userId: string, activeId: string): Promise<boolean> {
  ctx.outbox.kick()
  return !(await ctx.activeCache.set(userId, activeId))
}

async function list(prisma: PrismaClient, userId: string, limit: number, cursor: string | undefined): Promise<NamedSessionList> {
  const k = keyset(cursor, limit, 'desc')
  const rows = await prisma.namedSession.findMany({ where: { userId, ...k.where }, orderBy: k.orderBy, take: k.take })
  const { page, nextCursor } = keysetPage(rows, limit)
  return { items: page.map(toDto), nextCursor }
}

async function activeId(ctx: Ctx, userId: string): Promise<Outcome<string>> {
  const cached = await ctx.activeCache.get(userId)
  if (cached.value) return { value: cached.value, degraded: false }
  // The hot read when the cache misses or Redis is down: a prepared statement on the pool,
  // several times cheaper per call than going through the Prisma client.
  const { rows } = await ctx.db.pool.query<{ id: string }>({
    name: 'named-active-id',
    text: `SELECT id FROM ${ctx.db.table('named_sessions')} WHERE user_id = $1 AND active`,
    values: [userId]
  })
  const row = rows[0]
  if (!row) throw new NoActiveSessionError()
  const filled = cached.degraded ? false : await ctx.activeCache.fill(userId, row.id)
  return { value: row.id, degraded: cached.degraded || !filled }
}

async function create(ctx: Ctx, userId: string, title: string): Promise<Outcome<NamedSessionDto>> {
  const created = await insertActive(ctx, userId, title)
  return { value: toDto(created), degraded: await afterCommit(ctx, userId, created.id) }
}

/** The new session, active in place of the previous one; a title the user already has is a 409. */
async function insertActive(ctx: Ctx, userId: string, title: string): Promise<NamedSession> {
  try {
    return await ctx.prisma.$transaction(async (tx) => {
      await lockUser(tx, userId)
      const previous = await deactivate(tx, userId)
      const s = await tx.namedSession.create({ data: { userId, title, active: true } })
      await emit(ctx, tx, NamedSessionSubjects.created, s, previous)
      return s
    })
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateTitleError(title)
    throw err
  }
}

async function activate(ctx: Ctx, userId: string, title: string): Promise<Outcome<NamedSessionDto>> {
  const { session, changed } = await ctx.prisma.$transaction(async (tx) => {
    await lockUser(tx, userId)
    const target = await tx.namedSession.findUnique({ where: { userId_title: { userId, title } } })
    if (!target) throw new SessionNotFoundError(title)
    if (target.active) return { session: target, changed: false }
    const previous = await deactivate(tx, userId, target.id)
    const s = await tx.namedSession.update({ where: { id: target.id }, data: { active: true } })
    await emit(ctx, tx, NamedSessionSubjects.activated, s, previous)
    return { session: s, changed: true }
  })
  // Activating the active session again changes nothing and emits nothing; the cache is still refreshed.
  const degraded = changed ? await afterCommit(ctx, userId, session.id) : !(await ctx.activeCache.set(userId, session.id))
  return { value: toDto(session), degraded }
}

async function remove(ctx: Ctx, userId: string, title: string): Promise<void> {
  await ctx.prisma.$transaction(async (tx) => {
    await lockUser(tx, userId)
    const target = await tx.namedSession.findUnique({ where: { userId_title: { userId, title } } })
    if (!target) throw new SessionNotFoundError(title)
    if (target.active) throw new ActiveSessionDeletionError(title)
    await tx.namedSession.delete({ where: { id: target.id } })
    await emit(ctx, tx, NamedSessionSubjects.deleted, target, null)
  })
  ctx.outbox.kick()
}

async function stats(prisma: PrismaClient, maxAgeSeconds: number | undefined): Promise<CleanupKindStats> {
  const [row] = await prisma.$queryRaw<Array<{ total: bigint; expired: bigint; avg: number | null }>>`
    SELECT count(*) AS total,
           count(*) FILTER (WHERE NOT active AND ${maxAgeSeconds ?? null}::int IS NOT NULL
                            AND updated_at < now() - make_interval(secs => ${maxAgeSeconds ?? 0})) AS expired,
           avg(EXTRACT(EPOCH FROM (updated_at - created_at))) FILTER (WHERE NOT active)::float8 AS avg
      FROM named_sessions`
  return {
    active: Number(row?.total ?? 0),
    expired: Number(row?.expired ?? 0),
    averageSessionDurationSeconds: Math.round(row?.avg ?? 0)
  }
}

async function cleanup(ctx: Ctx, olderThanSeconds: number, batchSize: number): Promise<CleanupReply> {
  const result = await inBatches(ctx.log, 'named-session', batchSize, () =>
    ctx.prisma.$transaction((tx) => deleteInactive(ctx, tx, olderThanSeconds, batchSize))
  )
  ctx.outbox.kick()
  return result
}

/** One batch: inactive sessions unchanged for `olderThanSeconds`, oldest first, each with its deleted event. */
async function deleteInactive(ctx: Ctx, tx: Tx, olderThanSeconds: number, batchSize: number): Promise<number> {
  const rows = await tx.$queryRaw<Array<Pick<NamedSession, 'id' | 'userId' | 'title'>>>`
    DELETE FROM named_sessions WHERE id IN (
      SELECT id FROM named_sessions
       WHERE NOT active AND updated_at < now() - make_interval(secs => ${olderThanSeconds})
       ORDER BY updated_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED)
    RETURNING id, user_id AS "userId", title`
  if (rows.length) {
    await tx.outboxEvent.createMany({ data: rows.map((r) => eventRow(ctx.source, NamedSessionSubjects.deleted, r, null)) })
  }
  return rows.length
}

export const namedSessionsPlugin = fp<{ source: string }>(
  async (fastify, opts) => {
    const { prisma, db, activeCache, outbox, log } = fastify
    fastify.decorate('namedSessions', createNamedSessions({ prisma, db, activeCache, outbox, log }, opts))
  },
  { name: 'named-sessions', dependencies: ['prisma', 'active-cache', 'platform-outbox'] }
)
