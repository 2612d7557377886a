import fp from 'fastify-plugin'
import { NamedSessionSubjects, type NamedSession as NamedSessionDto } from '@platform/contracts'
import { createEvent, outboxRow } from '@platform/kit'
import { Prisma, type NamedSession } from '../generated/prisma/client.js'
import { decodeCursor, encodeCursor } from '@platform/kit'
import {
  ActiveSessionDeletionError,
  DuplicateTitleError,
  NoActiveSessionError,
  SessionNotFoundError
} from '../domain/errors.js'

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

const isUniqueViolation = (err: unknown) =>
  err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002'

export interface NamedSessionService {
  list(userId: string, limit: number, cursor?: string): Promise<{ items: NamedSessionDto[]; nextCursor: string | null }>
  activeId(userId: string): Promise<Outcome<string>>
  create(userId: string, title: string): Promise<Outcome<NamedSessionDto>>
  activate(userId: string, title: string): Promise<Outcome<NamedSessionDto>>
  remove(userId: string, title: string): Promise<void>
  /** Deletes inactive sessions unchanged for `olderThanSeconds`, in batches, each with its event. */
  /** Figures for the cleanup worker: all sessions, those past `maxAgeSeconds`, mean age of the inactive ones. */
  stats(maxAgeSeconds: number | undefined): Promise<{ active: number; expired: number; averageSessionDurationSeconds: number }>
  cleanup(olderThanSeconds: number, batchSize: number): Promise<{ removed: number; batches: number; errors: number; durationMs: number }>
}

export const namedSessionsPlugin = fp<{ source: string }>(
  async (fastify, { source }) => {
    const { prisma, activeCache } = fastify

    /** Serializes one user's writes: with the partial unique index, exactly one session stays active. */
    const lockUser = (tx: Tx, userId: string) =>
      tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${'named:' + userId}))`

    const deactivate = async (tx: Tx, userId: string, exceptId?: string) => {
      const previous = await tx.namedSession.findFirst({ where: { userId, active: true }, select: { id: true } })
      if (previous && previous.id !== exceptId) {
        await tx.namedSession.update({ where: { id: previous.id }, data: { active: false } })
      }
      return previous?.id ?? null
    }

    const emit = (tx: Tx, type: string, s: NamedSession, previousActiveId: string | null) =>
      tx.outboxEvent.create({
        data: outboxRow(createEvent(type, source, { sessionId: s.id, userId: s.userId, title: s.title, previousActiveId }))
      })

    const afterCommit = async (userId: string, activeId: string): Promise<boolean> => {
      fastify.outbox.kick()
      return !(await activeCache.set(userId, activeId))
    }

    const service: NamedSessionService = {
      async list(userId, limit, cursor) {
        const after = cursor ? decodeCursor(cursor) : null
        const rows = await prisma.namedSession.findMany({
          where: {
            userId,
            ...(after
              ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
              : {})
          },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
          take: limit + 1
        })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return { items: page.map(toDto), nextCursor: rows.length > limit && last ? encodeCursor(last) : null }
      },

      async activeId(userId) {
        const cached = await activeCache.get(userId)
        if (cached.value) return { value: cached.value, degraded: false }
        // The hot read when the cache misses or Redis is down: a prepared statement on the pool,
        // several times cheaper per call than going through the Prisma client.
        const { rows } = await fastify.db.pool.query<{ id: string }>({
          name: 'named-active-id',
          text: `SELECT id FROM ${fastify.db.table('named_sessions')} WHERE user_id = $1 AND active`,
          values: [userId]
        })
        const row = rows[0]
        if (!row) throw new NoActiveSessionError()
        const filled = cached.degraded ? false : await activeCache.fill(userId, row.id)
        return { value: row.id, degraded: cached.degraded || !filled }
      },

      async create(userId, title) {
        let created: NamedSession
        try {
          created = await prisma.$transaction(async (tx) => {
            await lockUser(tx, userId)
            const previous = await deactivate(tx, userId)
            const s = await tx.namedSession.create({ data: { userId, title, active: true } })
            await emit(tx, NamedSessionSubjects.created, s, previous)
            return s
          })
        } catch (err) {
          if (isUniqueViolation(err)) throw new DuplicateTitleError(title)
          throw err
        }
        return { value: toDto(created), degraded: await afterCommit(userId, created.id) }
      },

      async activate(userId, title) {
        const { session, changed } = await prisma.$transaction(async (tx) => {
          await lockUser(tx, userId)
          const target = await tx.namedSession.findUnique({ where: { userId_title: { userId, title } } })
          if (!target) throw new SessionNotFoundError(title)
          if (target.active) return { session: target, changed: false }
          const previous = await deactivate(tx, userId, target.id)
          const s = await tx.namedSession.update({ where: { id: target.id }, data: { active: true } })
          await emit(tx, NamedSessionSubjects.activated, s, previous)
          return { session: s, changed: true }
        })
        // Activating the active session again changes nothing and emits nothing; the cache is still refreshed.
        const degraded = changed ? await afterCommit(userId, session.id) : !(await activeCache.set(userId, session.id))
        return { value: toDto(session), degraded }
      },

      async remove(userId, title) {
        await prisma.$transaction(async (tx) => {
          await lockUser(tx, userId)
          const target = await tx.namedSession.findUnique({ where: { userId_title: { userId, title } } })
          if (!target) throw new SessionNotFoundError(title)
          if (target.active) throw new ActiveSessionDeletionError(title)
          await tx.namedSession.delete({ where: { id: target.id } })
          await emit(tx, NamedSessionSubjects.deleted, target, null)
        })
        fastify.outbox.kick()
      },

      async stats(maxAgeSeconds) {
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
      },

      async cleanup(olderThanSeconds, batchSize) {
        const started = Date.now()
        let removed = 0
        let batches = 0
        let errors = 0
        for (;;) {
          let n: number
          try {
            n = await prisma.$transaction(async (tx) => {
              const rows = await tx.$queryRaw<NamedSession[]>`
                DELETE FROM named_sessions WHERE id IN (
                  SELECT id FROM named_sessions
                   WHERE NOT active AND updated_at < now() - make_interval(secs => ${olderThanSeconds})
                   ORDER BY updated_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED)
                RETURNING id, user_id AS "userId", title`
              if (rows.length) {
                await tx.outboxEvent.createMany({
                  data: rows.map((r) =>
                    outboxRow(createEvent(NamedSessionSubjects.deleted, source, { sessionId: r.id, userId: r.userId, title: r.title, previousActiveId: null }))
                  )
                })
              }
              return rows.length
            })
          } catch (err) {
            errors++
            fastify.log.error({ err }, 'named-session cleanup batch failed')
            if (errors >= 3) break
            continue
          }
          if (n) batches++
          removed += n
          if (n < batchSize) break
        }
        fastify.outbox.kick()
        const durationMs = Date.now() - started
        fastify.log.info({ cleanup_count: removed, duration_ms: durationMs, errors_encountered: errors }, 'named-session cleanup finished')
        return { removed, batches, errors, durationMs }
      }
    }
    fastify.decorate('namedSessions', service)
  },
  { name: 'named-sessions', dependencies: ['prisma', 'active-cache', 'platform-outbox'] }
)
