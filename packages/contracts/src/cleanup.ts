import { Type, type Static } from 'typebox'
import { EventEnvelope } from './events.js'
import { errorResponse as e, type ErrorCode } from './errors.js'
import type { RouteContract } from './routes.js'

/** The kinds of session the cleanup worker expires, each owned by one service. */
export const CleanupKinds = ['login_sessions', 'task_sessions', 'chat_sessions', 'named_sessions'] as const
export type CleanupKind = (typeof CleanupKinds)[number]

/** One kind's figures, as its owning service reports them on GET /internal/cleanup/stats. */
export const CleanupKindStats = Type.Object({
  /** Sessions currently live. */
  active: Type.Integer({ minimum: 0 }),
  /** Sessions the next run would end or remove. */
  expired: Type.Integer({ minimum: 0 }),
  /** Mean lifetime of finished sessions, in seconds (0 when none finished yet). */
  averageSessionDurationSeconds: Type.Number({ minimum: 0 })
})
export type CleanupKindStats = Static<typeof CleanupKindStats>

/** GET /internal/cleanup/stats (service role): the kinds a service owns → their figures. */
export const CleanupStatsReply = Type.Record(Type.String(), CleanupKindStats)
export type CleanupStatsReply = Static<typeof CleanupStatsReply>

// ---- the cleanup worker's admin API (through the gateway, admin role) ------------------------------

// Literal tuples (not .map) so that Static<> keeps the union.
export const CleanupKind = Type.Union([
  Type.Literal('login_sessions'),
  Type.Literal('task_sessions'),
  Type.Literal('chat_sessions'),
  Type.Literal('named_sessions')
])

export const CleanupTriggers = ['scheduled', 'manual'] as const
export const CleanupTrigger = Type.Union([Type.Literal('scheduled'), Type.Literal('manual')])
export type CleanupTrigger = Static<typeof CleanupTrigger>

/** queued (manual, not picked up yet) → running → succeeded | failed; `retrying` between BullMQ attempts. */
export const CleanupRunStatuses = ['queued', 'running', 'retrying', 'succeeded', 'failed'] as const
export const CleanupRunStatus = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('retrying'),
  Type.Literal('succeeded'),
  Type.Literal('failed')
])
export type CleanupRunStatus = Static<typeof CleanupRunStatus>

/** The longest age a caller may pass: ten years. */
export const CLEANUP_MAX_AGE_SECONDS = 10 * 365 * 86400

/** One cleanup run (one BullMQ job, across its attempts), as the run history records it. */
export const CleanupRun = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    kind: CleanupKind,
    trigger: CleanupTrigger,
    status: CleanupRunStatus,
    /** The age passed to the owning service; null means its own configured default. */
    olderThanSeconds: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    /** When the run was recorded (queued or first picked up). */
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    /** Sessions ended or deleted by the owning service. */
    removed: Type.Integer({ minimum: 0 }),
    /** Rows or batches the owning service skipped and counted (partial failure). */
    errors: Type.Integer({ minimum: 0 }),
    /** BullMQ attempts started so far (a retry after a failure or a crash adds one). */
    attempts: Type.Integer({ minimum: 0 }),
    /** Why the last attempt failed; null when it did not. */
    error: Type.Union([Type.String(), Type.Null()]),
    /** The owning service's reply (batches, durationMs, and its kind's own figures). */
    details: Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()])
  },
  { $id: 'CleanupRun' }
)
export type CleanupRun = Static<typeof CleanupRun>

export const CleanupRunListQuery = Type.Object(
  {
    /** Checked against CleanupKinds by the handler, so an unknown kind answers UNKNOWN_CLEANUP_KIND. */
    kind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    status: Type.Optional(CleanupRunStatus),
    trigger: Type.Optional(CleanupTrigger),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
  },
  { additionalProperties: false }
)
export type CleanupRunListQuery = Static<typeof CleanupRunListQuery>

/** Newest first. */
export const CleanupRunList = Type.Object({
  runs: Type.Array(CleanupRun),
  nextCursor: Type.Union([Type.String(), Type.Null()])
})
export type CleanupRunList = Static<typeof CleanupRunList>

export const CleanupRunParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export type CleanupRunParams = Static<typeof CleanupRunParams>

export const StartCleanupRunBody = Type.Object(
  {
    /** Checked against CleanupKinds by the handler (UNKNOWN_CLEANUP_KIND), not by the schema. */
    kind: Type.String({ minLength: 1, maxLength: 64 }),
    /** Overrides the owning service's age for this run (login, task and named sessions). */
    olderThanSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: CLEANUP_MAX_AGE_SECONDS }))
  },
  { additionalProperties: false }
)
export type StartCleanupRunBody = Static<typeof StartCleanupRunBody>

/** The spec's session metrics for one kind; figures the owning service could not give are null. */
export const CleanupKindMetrics = Type.Object({
  active_sessions: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  /** Sessions awaiting cleanup. */
  expired_sessions: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  /** Finished runs (succeeded or failed) in the run history. */
  cleanup_runs: Type.Integer({ minimum: 0 }),
  failed_runs: Type.Integer({ minimum: 0 }),
  /** When the last successful run finished. */
  last_cleanup_time: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  /** Seconds. */
  average_session_duration: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
  scheduled: Type.Boolean(),
  interval_seconds: Type.Union([Type.Number({ minimum: 0 }), Type.Null()])
})
export type CleanupKindMetrics = Static<typeof CleanupKindMetrics>

export const CleanupMetricsReply = Type.Object({
  kinds: Type.Record(Type.String(), CleanupKindMetrics),
  /** Resident memory of this worker process. */
  memory_usage_mb: Type.Number({ minimum: 0 }),
  timestamp: Type.String({ format: 'date-time' })
})
export type CleanupMetricsReply = Static<typeof CleanupMetricsReply>

/** One kind in the worker's /health. */
export const CleanupKindHealth = Type.Object({
  scheduled: Type.Boolean(),
  intervalSeconds: Type.Union([Type.Number(), Type.Null()]),
  lastSuccessAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  /** No success for two intervals. */
  overdue: Type.Boolean(),
  activeSessions: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  /** More active sessions than ACTIVE_SESSIONS_ALERT. */
  overThreshold: Type.Boolean()
})
export type CleanupKindHealth = Static<typeof CleanupKindHealth>

/** The worker's GET /health: liveness (always 200) plus the spec's health criteria. */
export const CleanupHealthReply = Type.Object(
  {
    status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]),
    timestamp: Type.String({ format: 'date-time' }),
    uptime: Type.Number({ description: 'Seconds since the worker started' }),
    activeSessionsAlert: Type.Integer({ minimum: 0 }),
    kinds: Type.Record(Type.String(), CleanupKindHealth),
    /** Why the worker is degraded, one short sentence each; empty when healthy. */
    reasons: Type.Array(Type.String())
  },
  { $id: 'CleanupHealthReply' }
)
export type CleanupHealthReply = Static<typeof CleanupHealthReply>

export const CleanupErrorCodes = [
  'UNKNOWN_CLEANUP_KIND',
  'CLEANUP_AGE_REQUIRED',
  'CLEANUP_AGE_NOT_SUPPORTED',
  'CLEANUP_RUN_NOT_FOUND',
  'QUEUE_UNAVAILABLE',
  'INVALID_CURSOR'
] as const satisfies readonly ErrorCode[]

// ---- BullMQ job data (validated by the worker when it takes a job) ---------------------------------

export const CleanupJobData = Type.Object({
  kind: CleanupKind,
  trigger: CleanupTrigger,
  /** Manual runs: the run id the API answered with (also the job id). */
  runId: Type.Optional(Type.String({ format: 'uuid' })),
  olderThanSeconds: Type.Optional(Type.Integer({ minimum: 0 }))
})
export type CleanupJobData = Static<typeof CleanupJobData>

// ---- events out -----------------------------------------------------------------------------------

export const CleanupSubjects = { runCompleted: 'cleanup.run.completed' } as const

/** `data` of cleanup.run.completed: a run reached its final state. No user data. */
export const CleanupRunCompletedData = Type.Object({
  runId: Type.String({ format: 'uuid' }),
  kind: CleanupKind,
  trigger: CleanupTrigger,
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')]),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.String({ format: 'date-time' }),
  durationMs: Type.Integer({ minimum: 0 }),
  removed: Type.Integer({ minimum: 0 }),
  errors: Type.Integer({ minimum: 0 }),
  attempts: Type.Integer({ minimum: 1 }),
  error: Type.Union([Type.String(), Type.Null()])
})
export type CleanupRunCompletedData = Static<typeof CleanupRunCompletedData>

export const CleanupRunCompleted = EventEnvelope(CleanupSubjects.runCompleted, CleanupRunCompletedData)
export type CleanupRunCompleted = Static<typeof CleanupRunCompleted>

// ---- route contracts --------------------------------------------------------------------------------

const adminErrors = { 401: e(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED']), 403: e(['FORBIDDEN'], 'admin role required') }
const dbDown = { 503: e(['DATABASE_UNAVAILABLE'], 'with Retry-After') }

/** The cleanup worker's admin API as published through the gateway. */
export const CleanupRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/api/v1/admin/cleanup/runs',
    tag: 'cleanup',
    auth: 'admin',
    summary: 'Run history, newest first, filtered by kind, status or trigger',
    querystring: CleanupRunListQuery,
    responses: {
      200: { description: 'A page of runs', schema: CleanupRunList },
      400: e(['UNKNOWN_CLEANUP_KIND', 'INVALID_CURSOR', 'VALIDATION_ERROR']),
      ...adminErrors,
      ...dbDown
    }
  },
  {
    method: 'GET',
    path: '/api/v1/admin/cleanup/runs/{id}',
    tag: 'cleanup',
    auth: 'admin',
    summary: 'One run',
    params: CleanupRunParams,
    responses: {
      200: { description: 'The run', schema: CleanupRun },
      400: e(['VALIDATION_ERROR']),
      404: e(['CLEANUP_RUN_NOT_FOUND']),
      ...adminErrors,
      ...dbDown
    }
  },
  {
    method: 'POST',
    path: '/api/v1/admin/cleanup/run',
    tag: 'cleanup',
    auth: 'admin',
    summary: 'Run one kind now, through the same queue as the schedules',
    body: StartCleanupRunBody,
    responses: {
      200: { description: 'The run finished within CLEANUP_RUN_WAIT_MS: its result', schema: CleanupRun },
      202: { description: 'Still queued or running: poll Location (/api/v1/admin/cleanup/runs/{id})', schema: CleanupRun },
      400: e(['UNKNOWN_CLEANUP_KIND', 'CLEANUP_AGE_REQUIRED', 'CLEANUP_AGE_NOT_SUPPORTED', 'VALIDATION_ERROR']),
      ...adminErrors,
      503: e(['QUEUE_UNAVAILABLE', 'DATABASE_UNAVAILABLE'], 'with Retry-After')
    }
  },
  {
    method: 'GET',
    path: '/api/v1/admin/cleanup/metrics',
    tag: 'cleanup',
    auth: 'admin',
    summary: 'Per kind: active and expired sessions, runs, last cleanup, average session duration; worker memory',
    responses: { 200: { description: 'The figures', schema: CleanupMetricsReply }, ...adminErrors, ...dbDown }
  }
]
