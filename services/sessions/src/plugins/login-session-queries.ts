// The reads of login sessions: the state and DTO a row becomes, a user's list, the figures.
import {
  DeviceTypes,
  EndReasons,
  type CleanupKindStats,
  type EndReason,
  type LoginSession as LoginSessionDto,
  type LoginSessionMetrics,
  type LoginSessionState
} from '@platform/contracts'
import { keyset, keysetPage } from '@platform/kit'
import type { LoginSession, Prisma, PrismaClient } from '../generated/prisma/client.js'
import type { LoginLimits } from '../domain/login-rules.js'

type DeviceType = (typeof DeviceTypes)[number]
const END_REASONS: ReadonlySet<string> = new Set(EndReasons)
const DEVICE_TYPES: ReadonlySet<string> = new Set(DeviceTypes)
const isEndReason = (v: string): v is EndReason => END_REASONS.has(v)
const isDeviceType = (v: string): v is DeviceType => DEVICE_TYPES.has(v)

/** The columns are plain text: only this service writes them, always with a contract value. */
const endReasonOf = (s: LoginSession): EndReason | null => (s.endReason !== null && isEndReason(s.endReason) ? s.endReason : null)
const deviceTypeOf = (s: LoginSession): DeviceType => (isDeviceType(s.deviceType) ? s.deviceType : 'unknown')

export function toState(s: LoginSession): LoginSessionState {
  return {
    sid: s.id,
    userId: s.userId,
    userAgent: s.userAgent,
    ip: s.lastIpAddress,
    createdAt: s.createdAt.getTime(),
    lastSeenAt: s.lastSeenAt.getTime(),
    endReason: endReasonOf(s)
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
    deviceType: deviceTypeOf(s),
    browser: s.browser,
    os: s.os,
    createdAt: s.createdAt.toISOString(),
    lastSeenAt: s.lastSeenAt.toISOString(),
    requestCount: s.requestCount,
    chatInteractions: s.chatInteractions,
    endedAt: s.endedAt?.toISOString() ?? null,
    endReason: endReasonOf(s),
    current: s.id === currentSid
  }
}

export interface ListOptions {
  limit: number
  cursor?: string | undefined
  state: 'active' | 'ended' | 'all'
}

const BY_STATE = {
  active: { endedAt: null },
  ended: { endedAt: { not: null } },
  all: {}
} satisfies Record<ListOptions['state'], Prisma.LoginSessionWhereInput>

/** A user's sessions, newest first; `current` marks the one of the token that asked. */
export async function listLoginSessions(prisma: PrismaClient, userId: string, currentSid: string | undefined, opts: ListOptions) {
  const k = keyset(opts.cursor, opts.limit, 'desc')
  const rows = await prisma.loginSession.findMany({ where: { userId, ...BY_STATE[opts.state], ...k.where }, orderBy: k.orderBy, take: k.take })
  const { page, nextCursor } = keysetPage(rows, opts.limit)
  return { items: page.map((s) => toDto(s, currentSid)), nextCursor }
}

/** Figures for the cleanup worker: open sessions, those the next cleanup would end, mean duration. */
export async function loginStats(prisma: PrismaClient, limits: LoginLimits): Promise<CleanupKindStats> {
  const [row] = await prisma.$queryRaw<Array<{ active: bigint; expired: bigint; avg: number | null }>>`
    SELECT count(*) FILTER (WHERE ended_at IS NULL) AS active,
           count(*) FILTER (WHERE ended_at IS NULL AND (created_at < now() - make_interval(secs => ${limits.maxAgeSeconds})
                            OR last_seen_at < now() - make_interval(secs => ${limits.inactivitySeconds}))) AS expired,
           avg(EXTRACT(EPOCH FROM (ended_at - created_at))) FILTER (WHERE ended_at IS NOT NULL)::float8 AS avg
      FROM login_sessions`
  return {
    active: Number(row?.active ?? 0),
    expired: Number(row?.expired ?? 0),
    averageSessionDurationSeconds: Math.round(row?.avg ?? 0)
  }
}

const round = (n: number | null | undefined) => Math.round((n ?? 0) * 100) / 100

/** Admin figures: open and started sessions, endings and violations by reason, averages. */
export async function loginMetrics(prisma: PrismaClient): Promise<LoginSessionMetrics> {
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
