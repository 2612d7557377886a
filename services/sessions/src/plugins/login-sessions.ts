import fp from 'fastify-plugin'
import {
  LoginSessionSubjects,
  type EndReason,
  type LoginActivityBody,
  type LoginSession as LoginSessionDto,
  type LoginSessionMetrics,
  type LoginSessionState,
  type ResolveLoginSessionBody,
  type ViolationReason
} from '@platform/contracts'
import { createEvent, outboxRow } from '@platform/kit'
import { Prisma, type LoginSession } from '../generated/prisma/client.js'
import { parseDevice } from '../domain/device.js'
import { expiryReason, type LoginLimits } from '../domain/login-rules.js'
import { decodeCursor, encodeCursor } from '@platform/kit'
import { ConcurrentSessionLimitError, LoginSessionNotFoundError } from '../domain/errors.js'

type Tx = Prisma.TransactionClient

export interface LoginSessionOptions extends LoginLimits {
  source: string
  maxConcurrent: number
  overflow: 'end_oldest' | 'deny_new'
  orphanAgeSeconds: number
}

export interface EndRequest {
  reason: EndReason
  violation?: ViolationReason | undefined
  detail?: string | undefined
}

export interface CleanupResult {
  removed: number
  batches: number
  errors: number
  durationMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    loginSessions: LoginSessionService
  }
}

export interface LoginSessionService {
  resolve(input: ResolveLoginSessionBody): Promise<LoginSessionState>
  end(sid: string, request: EndRequest, ownerId?: string): Promise<LoginSessionState>
  endOthers(userId: string, keepSid: string | undefined): Promise<number>
  list(
    userId: string,
    currentSid: string | undefined,
    opts: { limit: number; cursor?: string | undefined; state: 'active' | 'ended' | 'all' }
  ): Promise<{ items: LoginSessionDto[]; nextCursor: string | null }>
  recordActivity(items: LoginActivityBody['items']): Promise<number>
  /** Counts one chat interaction per event (source, id); false for one already counted. */
  countChatInteraction(event: { source: string; id: string }, sid: string): Promise<boolean>
  cleanup(opts: { olderThanSeconds?: number | undefined; batchSize: number }): Promise<CleanupResult>
  metrics(): Promise<LoginSessionMetrics>
  /** Figures for the cleanup worker: open sessions, those the next cleanup would end, mean duration. */
  stats(): Promise<{ active: number; expired: number; averageSessionDurationSeconds: number }>
}

export function toState(s: LoginSession): LoginSessionState {
  return {
    sid: s.id,
    userId: s.userId,
    userAgent: s.userAgent,
    ip: s.lastIpAddress,
    createdAt: s.createdAt.getTime(),
    lastSeenAt: s.lastSeenAt.getTime(),
    endReason: (s.endReason as EndReason | null) ?? null
  }
}

function toDto(s: LoginSession, currentSid: string | undefined): LoginSessionDto {
  return {
    id: s.id,
    userId: s.userId,
    ipAddress: s.ipAddress,
    lastIpAddress: s.lastIpAddress,
    ipChanges: s.ipChanges,
    userAgent: s.userAgent,
    deviceType: s.deviceType as LoginSessionDto['deviceType'],
    browser: s.browser,
    os: s.os,
    createdAt: s.createdAt.toISOString(),
    lastSeenAt: s.lastSeenAt.toISOString(),
    requestCount: s.requestCount,
    chatInteractions: s.chatInteractions,
    endedAt: s.endedAt?.toISOString() ?? null,
    endReason: (s.endReason as EndReason | null) ?? null,
    current: s.id === currentSid
  }
}

export const loginSessionsPlugin = fp<LoginSessionOptions>(
  async (fastify, opts) => {
    const { prisma, loginState } = fastify

    const lockUser = (tx: Tx, userId: string) => tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${'login:' + userId}))`

    const endedEvent = (s: LoginSession) =>
      outboxRow(
        createEvent(LoginSessionSubjects.ended, opts.source, {
          sid: s.id,
          userId: s.userId,
          reason: s.endReason as EndReason,
          durationSeconds: Math.max(0, ((s.endedAt ?? new Date()).getTime() - s.createdAt.getTime()) / 1000),
          requestCount: s.requestCount
        })
      )

    /** Ends open sessions inside a transaction; returns the rows as ended. */
    const endWithin = async (tx: Tx, ids: string[], reason: EndReason): Promise<LoginSession[]> => {
      if (ids.length === 0) return []
      const now = new Date()
      await tx.loginSession.updateMany({ where: { id: { in: ids }, endedAt: null }, data: { endedAt: now, endReason: reason } })
      const ended = await tx.loginSession.findMany({ where: { id: { in: ids }, endedAt: now, endReason: reason } })
      if (ended.length) await tx.outboxEvent.createMany({ data: ended.map(endedEvent) })
      return ended
    }

    const afterCommit = async (rows: LoginSession[]) => {
      fastify.outbox.kick()
      await loginState.write(rows.map(toState))
    }

    const service: LoginSessionService = {
      async resolve(input) {
        const now = new Date()
        const changed: LoginSession[] = []
        const session = await prisma.$transaction(async (tx) => {
          await lockUser(tx, input.userId)
          const existing = await tx.loginSession.findUnique({ where: { id: input.sid } })
          if (existing) {
            const reason = existing.endedAt ? null : expiryReason(existing, now, opts)
            if (!reason) return existing
            const [ended] = await endWithin(tx, [existing.id], reason)
            changed.push(ended as LoginSession)
            return ended as LoginSession
          }
          const open = await tx.loginSession.findMany({
            where: { userId: input.userId, endedAt: null },
            orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
            select: { id: true }
          })
          if (open.length >= opts.maxConcurrent) {
            if (opts.overflow === 'deny_new') throw Object.assign(new ConcurrentSessionLimitError(), { title: 'Too many active sessions' })
            const excess = open.slice(0, open.length - opts.maxConcurrent + 1).map((s) => s.id)
            changed.push(...(await endWithin(tx, excess, 'limit')))
          }
          const device = parseDevice(input.userAgent)
          const created = await tx.loginSession.create({
            data: {
              id: input.sid,
              userId: input.userId,
              ipAddress: input.ip,
              lastIpAddress: input.ip,
              userAgent: input.userAgent,
              ...device,
              createdAt: now,
              lastSeenAt: now,
              requestCount: 0
            }
          })
          await tx.outboxEvent.create({
            data: outboxRow(
              createEvent(LoginSessionSubjects.started, opts.source, {
                sid: created.id,
                userId: created.userId,
                ipAddress: created.ipAddress,
                ...device
              })
            )
          })
          return created
        })
        await afterCommit([...changed, session])
        return toState(session)
      },

      async end(sid, request, ownerId) {
        const { session, ended } = await prisma.$transaction(async (tx) => {
          const target = await tx.loginSession.findUnique({ where: { id: sid } })
          if (!target || (ownerId !== undefined && target.userId !== ownerId)) throw new LoginSessionNotFoundError(sid)
          if (request.violation) {
            const detail = request.detail ?? ''
            await tx.loginViolation.create({ data: { sessionId: sid, userId: target.userId, reason: request.violation, detail } })
            await tx.outboxEvent.create({
              data: outboxRow(
                createEvent(LoginSessionSubjects.violation, opts.source, { sid, userId: target.userId, reason: request.violation, detail })
              )
            })
          }
          if (target.endedAt) return { session: target, ended: [] as LoginSession[] }
          const rows = await endWithin(tx, [sid], request.reason)
          return { session: rows[0] ?? target, ended: rows }
        })
        await afterCommit(ended.length ? ended : [session])
        return toState(session)
      },

      async endOthers(userId, keepSid) {
        const ended = await prisma.$transaction(async (tx) => {
          await lockUser(tx, userId)
          const open = await tx.loginSession.findMany({
            where: { userId, endedAt: null, ...(keepSid ? { id: { not: keepSid } } : {}) },
            select: { id: true }
          })
          return endWithin(tx, open.map((s) => s.id), 'revoked')
        })
        await afterCommit(ended)
        return ended.length
      },

      async list(userId, currentSid, { limit, cursor, state }) {
        const after = cursor ? decodeCursor(cursor) : null
        const rows = await prisma.loginSession.findMany({
          where: {
            userId,
            ...(state === 'active' ? { endedAt: null } : state === 'ended' ? { endedAt: { not: null } } : {}),
            ...(after
              ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
              : {})
          },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
          take: limit + 1
        })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return {
          items: page.map((s) => toDto(s, currentSid)),
          nextCursor: rows.length > limit && last ? encodeCursor(last) : null
        }
      },

      async recordActivity(items) {
        if (items.length === 0) return 0
        // One statement for the whole batch: the guard's flushes never cost a write per request.
        const { rowCount } = await fastify.db.pool.query(
          `UPDATE login_sessions s SET
              last_seen_at = GREATEST(s.last_seen_at, to_timestamp(v.t / 1000.0)),
              request_count = s.request_count + v.n,
              ip_changes = s.ip_changes + (v.ip IS NOT NULL AND v.ip <> s.last_ip_address)::int,
              last_ip_address = COALESCE(v.ip, s.last_ip_address)
            FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[]) AS v(sid, t, n, ip)
           WHERE s.id = v.sid`,
          [items.map((i) => i.sid), items.map((i) => i.lastSeenAt), items.map((i) => i.requests), items.map((i) => i.ip ?? null)]
        )
        return rowCount ?? 0
      },

      async countChatInteraction(event, sid) {
        try {
          await prisma.$transaction([
            prisma.processedEvent.create({ data: { source: event.source, id: event.id } }),
            prisma.loginSession.updateMany({ where: { id: sid }, data: { chatInteractions: { increment: 1 } } })
          ])
          return true
        } catch (err) {
          if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') return false
          throw err
        }
      },

      async cleanup({ olderThanSeconds, batchSize }) {
        const started = Date.now()
        const inactivity = olderThanSeconds ?? opts.inactivitySeconds
        let removed = 0
        let batches = 0
        let errors = 0
        for (;;) {
          let ended: LoginSession[]
          try {
            ended = await prisma.$transaction(async (tx) => {
              const due = await tx.$queryRaw<Array<{ id: string; reason: EndReason }>>`
                SELECT id, CASE WHEN created_at < now() - make_interval(secs => ${opts.maxAgeSeconds}) THEN 'expired' ELSE 'inactive' END AS reason
                  FROM login_sessions
                 WHERE ended_at IS NULL
                   AND (created_at < now() - make_interval(secs => ${opts.maxAgeSeconds})
                        OR last_seen_at < now() - make_interval(secs => ${inactivity})
                        OR (request_count <= 1 AND last_seen_at = created_at AND created_at < now() - make_interval(secs => ${opts.orphanAgeSeconds})))
                 ORDER BY last_seen_at
                 LIMIT ${batchSize}
                 FOR UPDATE SKIP LOCKED`
              const expired = await endWithin(tx, due.filter((d) => d.reason === 'expired').map((d) => d.id), 'expired')
              const inactive = await endWithin(tx, due.filter((d) => d.reason === 'inactive').map((d) => d.id), 'inactive')
              return [...expired, ...inactive]
            })
          } catch (err) {
            errors++
            fastify.log.error({ err, batches }, 'login-session cleanup batch failed')
            if (errors >= 3) break
            continue
          }
          if (ended.length) batches++
          removed += ended.length
          await afterCommit(ended)
          if (ended.length < batchSize) break
        }
        const durationMs = Date.now() - started
        fastify.log.info({ cleanup_count: removed, duration_ms: durationMs, errors_encountered: errors }, 'login-session cleanup finished')
        return { removed, batches, errors, durationMs }
      },

      async stats() {
        const [row] = await prisma.$queryRaw<Array<{ active: bigint; expired: bigint; avg: number | null }>>`
          SELECT count(*) FILTER (WHERE ended_at IS NULL) AS active,
                 count(*) FILTER (WHERE ended_at IS NULL AND (created_at < now() - make_interval(secs => ${opts.maxAgeSeconds})
                                  OR last_seen_at < now() - make_interval(secs => ${opts.inactivitySeconds}))) AS expired,
                 avg(EXTRACT(EPOCH FROM (ended_at - created_at))) FILTER (WHERE ended_at IS NOT NULL)::float8 AS avg
            FROM login_sessions`
        return {
          active: Number(row?.active ?? 0),
          expired: Number(row?.expired ?? 0),
          averageSessionDurationSeconds: Math.round(row?.avg ?? 0)
        }
      },

      async metrics() {
        const [totals] = await prisma.$queryRaw<
          Array<{ active: bigint; started: bigint; avg_duration: number | null; avg_requests: number | null; avg_chat: number | null }>
        >`SELECT count(*) FILTER (WHERE ended_at IS NULL) AS active,
                 count(*) AS started,
                 avg(EXTRACT(EPOCH FROM (ended_at - created_at))) FILTER (WHERE ended_at IS NOT NULL)::float8 AS avg_duration,
                 avg(request_count)::float8 AS avg_requests,
                 avg(chat_interactions)::float8 AS avg_chat
            FROM login_sessions`
        const ended = await prisma.loginSession.groupBy({ by: ['endReason'], where: { endedAt: { not: null } }, _count: { _all: true } })
        const violations = await prisma.loginViolation.groupBy({ by: ['reason'], _count: { _all: true } })
        const round = (n: number | null | undefined) => Math.round((n ?? 0) * 100) / 100
        return {
          active: Number(totals?.active ?? 0),
          started: Number(totals?.started ?? 0),
          endedByReason: Object.fromEntries(ended.map((e) => [e.endReason ?? 'unknown', e._count._all])),
          violationsByReason: Object.fromEntries(violations.map((v) => [v.reason, v._count._all])),
          averageDurationSeconds: round(totals?.avg_duration),
          averageRequestsPerSession: round(totals?.avg_requests),
          averageChatInteractionsPerSession: round(totals?.avg_chat)
        }
      }
    }
    fastify.decorate('loginSessions', service)
  },
  { name: 'login-sessions', dependencies: ['prisma', 'login-state', 'platform-outbox'] }
)
