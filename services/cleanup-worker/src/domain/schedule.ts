import { CleanupKinds, type CleanupKind } from '@platform/contracts'

export interface ScheduleConfig {
  SESSION_CLEANUP_INTERVAL_MINUTES: number
  LOGIN_SESSIONS_CLEANUP_INTERVAL_MINUTES?: number | undefined
  TASK_SESSIONS_CLEANUP_INTERVAL_MINUTES?: number | undefined
  CHAT_SESSIONS_CLEANUP_INTERVAL_MINUTES?: number | undefined
  NAMED_SESSIONS_CLEANUP_INTERVAL_MINUTES?: number | undefined
  CLEANUP_SCHEDULES: string
  NAMED_SESSION_MAX_AGE_DAYS?: number | undefined
}

export interface Schedule {
  kind: CleanupKind
  intervalMs: number
}

/** The BullMQ job scheduler id of a kind: the same on every replica, so each iteration runs once. */
export const schedulerId = (kind: CleanupKind) => `cleanup-${kind}`

function intervalMinutes(config: ScheduleConfig, kind: CleanupKind): number {
  const override = {
    login_sessions: config.LOGIN_SESSIONS_CLEANUP_INTERVAL_MINUTES,
    task_sessions: config.TASK_SESSIONS_CLEANUP_INTERVAL_MINUTES,
    chat_sessions: config.CHAT_SESSIONS_CLEANUP_INTERVAL_MINUTES,
    named_sessions: config.NAMED_SESSIONS_CLEANUP_INTERVAL_MINUTES
  }[kind]
  return override ?? config.SESSION_CLEANUP_INTERVAL_MINUTES
}

/** Every kind's interval, whether scheduled or not (a run-now of an unscheduled kind still has one for display). */
export function intervalMs(config: ScheduleConfig, kind: CleanupKind): number {
  return Math.max(1, Math.round(intervalMinutes(config, kind) * 60_000))
}

/** The kinds that get a schedule: those CLEANUP_SCHEDULES names; named sessions only with an age. */
export function schedules(config: ScheduleConfig): Schedule[] {
  const wanted =
    config.CLEANUP_SCHEDULES === 'all' ? [...CleanupKinds] : config.CLEANUP_SCHEDULES === 'none' ? [] : config.CLEANUP_SCHEDULES.split(',')
  return CleanupKinds.filter((k) => wanted.includes(k))
    .filter((k) => k !== 'named_sessions' || config.NAMED_SESSION_MAX_AGE_DAYS !== undefined)
    .map((kind) => ({ kind, intervalMs: intervalMs(config, kind) }))
}

/** A schedule is overdue when it has not succeeded for two intervals (counted from `since`, the worker's start, if never). */
export function overdue(now: number, lastSuccess: Date | null, since: number, intervalMs: number): boolean {
  return now - (lastSuccess?.getTime() ?? since) > 2 * intervalMs
}

/** Exponential backoff before retry number `retry` (1-based): base, 2×base, 4×base… capped. */
export function retryDelay(retry: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** (retry - 1), maxMs)
}
