import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import {
  LoginSessionSubjects,
  type CleanupKindStats,
  type CleanupReply,
  type EndReason,
  type LoginActivityBody,
  type LoginSessionList,
  type LoginSessionMetrics,
  type LoginSessionState,
  type ResolveLoginSessionBody,
  type ViolationReason
} from '@platform/contracts'
import { createEvent, outboxRow } from '@platform/kit'
import { Prisma, type LoginSession, type PrismaClient } from '../generated/prisma/client.js'
import { parseDevice } from '../domain/device.js'
import { expiryReason, type LoginLimits } from '../domain/login-rules.js'
import { inBatches } from '../domain/cleanup-batches.js'
import { ConcurrentSessionLimitError, LoginSessionNotFoundError } from '../domain/errors.js'
import { listLoginSessions, loginMetrics, loginStats, toState, type ListOptions } from './login-session-queries.js'
import type { LoginStateStore } from './login-state.js'

type Tx = Prisma.TransactionClient
type Pool = FastifyInstance['db']['pool']

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

declare module 'fastify' {
  interface FastifyInstance {
    loginSessions: LoginSessionService
  }
}

export interface LoginSessionService {
  resolve(input: ResolveLoginSessionBody): Promise<LoginSessionState>
  end(sid: string, request: EndRequest, ownerId?: string): Promise<LoginSessionState>
  endOthers(userId: string, keepSid: string | undefined): Promise<number>
  list(userId: string, currentSid: string | undefined, opts: ListOptions): Promise<LoginSessionList>
  recordActivity(items: LoginActivityBody['items']): Promise<number>
  /** Counts one chat interaction per event (source, id); false for one already counted. */
  countChatInteraction(event: { source: string; id: string }, sid: string): Promise<boolean>
  cleanup(opts: { olderThanSeconds?: number | undefined; batchSize: number }): Promise<CleanupReply>
  metrics(): Promise<LoginSessionMetrics>
  /** Figures for the cleanup worker: open sessions, those the next cleanup would end, mean duration. */
  stats(): Promise<CleanupKindStats>
}

/** What the login-session operations use: plain clients, no Fastify. */
export interface LoginSessionDeps {
  prisma: PrismaClient
  pool: Pool
  loginState: Pick<LoginStateStore, 'write'>
  outbox: { kick(): void }
  log: FastifyBaseLogger
}

interface Ctx extends LoginSessionDeps {
  opts: LoginSessionOptions
}

/** The login-session service on its clients: what the plugin decorates `fastify.loginSessions` with. */
export function createLoginSessions(deps: LoginSessionDeps, opts: LoginSessionOptions): LoginSessionService {
  const ctx: Ctx = { ...deps, opts }
  return {
    resolve: (input) => resolve(ctx, input),
    end: (sid, request, ownerId) => end(ctx, sid, request, ownerId),
    endOthers: (userId, keepSid) => endOthers(ctx, userId, keepSid),
    list: (userId, currentSid, page) => listLoginSessions(deps.prisma, userId, currentSid, page),
    recordActivity: (items) => recordActivity(deps.pool, items),
    countChatInteraction: (event, sid) => countChatInteraction(deps.prisma, event, sid),
    cleanup: (run) => cleanup(ctx, run),
    metrics: () => loginMetrics(deps.prisma),
    stats: () => loginStats(deps.prisma, opts)
  }
}

/** Serializes one user's session starts and mass endings, so the concurrency limit holds. */
const lockUser = (tx: Tx, userId: string) => tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${'login:' + userId}))`

const endedEvent = (source: string, s: LoginSession, reason: EndReason) =>
  outboxRow(
    createEvent(LoginSessionSubjects.ended, source, {
      sid: s.id,
      userId: s.userId,
      reason,
      durationSeconds: Math.max(0, ((s.endedAt ?? new Date()).getTime() - s.createdAt.getTime()) / 1000),
      requestCount: s.requestCount
    })
  )

/** Ends open sessions inside a transaction; returns the rows as ended. */
async function endWithin(ctx: Ctx, tx: Tx, ids: string[], reason: EndReason): Promise<LoginSession[]> {
  if (ids.length === 0) return []
  const now = new Date()
  await tx.loginSession.updateMany({ where: { id: { in: ids }, endedAt: null }, data: { endedAt: now, endReason: reason } })
  const ended = await tx.loginSession.findMany({ where: { id: { in: ids }, endedAt: now, endReason: reason } })
  if (ended.length) await tx.outboxEvent.createMany({ data: ended.map((s) => endedEvent(ctx.opts.source, s, reason)) })
  return ended
}

async function afterCommit(ctx: Ctx, rows: LoginSession[]): Promise<void> {
  ctx.outbox.kick()
  await ctx.loginState.write(rows.map(toState))
}

async function resolve(ctx: Ctx, input: ResolveLoginSessionBody): Promise<LoginSessionState> {
  const now = new Date()
  const changed: LoginSession[] = []
  const session = await ctx.prisma.$transaction(async (tx) => {
    await lockUser(tx, input.userId)
    const existing = await tx.loginSession.findUnique({ where: { id: input.sid } })
    if (existing) return settle(ctx, tx, existing, now, changed)
    changed.push(...(await makeRoom(ctx, tx, input.userId)))
    return start(ctx, tx, input, now)
  })
  await afterCommit(ctx, [...changed, session])
  return toState(session)
}

/** A known session as it is, or ended now when it is past its maximum age or idle time. */
async function settle(ctx: Ctx, tx: Tx, existing: LoginSession, now: Date, changed: LoginSession[]): Promise<LoginSession> {
  const reason = existing.endedAt ? null : expiryReason(existing, now, ctx.opts)
  if (!reason) return existing
  const [ended] = await endWithin(ctx, tx, [existing.id], reason)
  // Ended meanwhile by a request that does not take the user lock (a revoke): read what it wrote.
  if (!ended) return tx.loginSession.findUniqueOrThrow({ where: { id: existing.id } })
  changed.push(ended)
  return ended
}

/** At the limit: ends the user's oldest open sessions to make room for one more, or refuses it (deny_new). */
async function makeRoom(ctx: Ctx, tx: Tx, userId: string): Promise<LoginSession[]> {
  const open = await tx.loginSession.findMany({
    where: { userId, endedAt: null },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    select: { id: true }
  })
  if (open.length < ctx.opts.maxConcurrent) return []
  if (ctx.opts.overflow === 'deny_new') throw Object.assign(new ConcurrentSessionLimitError(), { title: 'Too many active sessions' })
  const excess = open.slice(0, open.length - ctx.opts.maxConcurrent + 1).map((s) => s.id)
  return endWithin(ctx, tx, excess, 'limit')
}

/** A sid seen for the first time: its session, with the device its user agent names, and its started event. */
async function start(ctx: Ctx, tx: Tx, input: ResolveLoginSessionBody, now: Date): Promise<LoginSession> {
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
  const started = { sid: created.id, userId: created.userId, ipAddress: created.ipAddress, ...device }
  await tx.outboxEvent.create({ data: outboxRow(createEvent(LoginSessionSubjects.started, ctx.opts.source, started)) })
  return created
}

/** Ends one session (its owner's when `ownerId` is given), recording the violation that ended it, if any. */
async function end(ctx: Ctx, sid: string, request: EndRequest, ownerId?: string): Promise<LoginSessionState> {
  const { session, ended } = await ctx.prisma.$transaction(async (tx): Promise<{ session: LoginSession; ended: LoginSession[] }> => {
    const target = await tx.loginSession.findUnique({ where: { id: sid } })
    if (!target || (ownerId !== undefined && target.userId !== ownerId)) throw new LoginSessionNotFoundError(sid)
    if (request.violation) await recordViolation(ctx, tx, target, request.violation, request.detail ?? '')
    if (target.endedAt) return { session: target, ended: [] }
    const rows = await endWithin(ctx, tx, [sid], request.reason)
    return { session: rows[0] ?? target, ended: rows }
  })
  await afterCommit(ctx, ended.length ? ended : [session])
  return toState(session)
}

async function recordViolation(ctx: Ctx, tx: Tx, target: LoginSession, reason: ViolationReason, detail: string): Promise<void> {
  const { id: sid, userId } = target
  await tx.loginViolation.create({ data: { sessionId: sid, userId, reason, detail } })
  const event = createEvent(LoginSessionSubjects.violation, ctx.opts.source, { sid, userId, reason, detail })
  await tx.outboxEvent.create({ data: outboxRow(event) })
}

async function endOthers(ctx: Ctx, userId: string, keepSid: string | undefined): Promise<number> {
  const ended = await ctx.prisma.$transaction(async (tx) => {
    await lockUser(tx, userId)
    const open = await tx.loginSession.findMany({
      where: { userId, endedAt: null, ...(keepSid ? { id: { not: keepSid } } : {}) },
      select: { id: true }
    })
    return endWithin(
      ctx,
      tx,
      open.map((s) => s.id),
      'revoked'
    )
  })
  await afterCommit(ctx, ended)
  return ended.length
}

async function recordActivity(pool: Pool, items: LoginActivityBody['items']): Promise<number> {
  if (items.length === 0) return 0
  // One statement for the whole batch: the guard's flushes never cost a write per request.
  const { rowCount } = await pool.query(
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
}

async function countChatInteraction(prisma: PrismaClient, event: { source: string; id: string }, sid: string): Promise<boolean> {
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
}

/** Ends open sessions past their age or idle time (`olderThanSeconds` overrides the idle time) in batches. */
function cleanup(ctx: Ctx, run: { olderThanSeconds?: number | undefined; batchSize: number }): Promise<CleanupReply> {
  const inactivity = run.olderThanSeconds ?? ctx.opts.inactivitySeconds
  return inBatches(ctx.log, 'login-session', run.batchSize, async () => {
    const ended = await ctx.prisma.$transaction((tx) => endDue(ctx, tx, inactivity, run.batchSize))
    await afterCommit(ctx, ended)
    return ended.length
  })
}

/** One batch: sessions past the maximum age, idle too long, or orphaned (never used after the first request). */
async function endDue(ctx: Ctx, tx: Tx, inactivity: number, batchSize: number): Promise<LoginSession[]> {
  const { maxAgeSeconds, orphanAgeSeconds } = ctx.opts
  const due = await tx.$queryRaw<Array<{ id: string; reason: 'expired' | 'inactive' }>>`
    SELECT id, CASE WHEN created_at < now() - make_interval(secs => ${maxAgeSeconds}) THEN 'expired' ELSE 'inactive' END AS reason
      FROM login_sessions
     WHERE ended_at IS NULL
       AND (created_at < now() - make_interval(secs => ${maxAgeSeconds})
            OR last_seen_at < now() - make_interval(secs => ${inactivity})
            OR (request_count <= 1 AND last_seen_at = created_at AND created_at < now() - make_interval(secs => ${orphanAgeSeconds})))
     ORDER BY last_seen_at
     LIMIT ${batchSize}
     FOR UPDATE SKIP LOCKED`
  const idsFor = (reason: EndReason) => due.filter((d) => d.reason === reason).map((d) => d.id)
  const expired = await endWithin(ctx, tx, idsFor('expired'), 'expired')
  const inactive = await endWithin(ctx, tx, idsFor('inactive'), 'inactive')
  return [...expired, ...inactive]
}

export const loginSessionsPlugin = fp<LoginSessionOptions>(
  async (fastify, opts) => {
    const { prisma, db, loginState, outbox, log } = fastify
    fastify.decorate('loginSessions', createLoginSessions({ prisma, pool: db.pool, loginState, outbox, log }, opts))
  },
  { name: 'login-sessions', dependencies: ['prisma', 'login-state', 'platform-outbox'] }
)
