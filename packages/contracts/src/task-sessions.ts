import { Type, type Static, type TSchema } from 'typebox'
import { EventEnvelope, ReceivedEventEnvelope } from './events.js'
import { UserId } from './common.js'
import { errorResponse as e, type ErrorCode } from './errors.js'
import type { RouteContract } from './routes.js'

/** Background task types (task-session seed). Scraping tasks never get a session. */
export const TaskTypes = [
  'image_analysis',
  'scenario_generation',
  'video_generation',
  'finalize_short',
  'save_scenario',
  'content_analysis',
  'data_extraction',
  'scraping'
] as const
export type TaskTypeName = (typeof TaskTypes)[number]
export const TaskType = Type.Union([
  Type.Literal('image_analysis'),
  Type.Literal('scenario_generation'),
  Type.Literal('video_generation'),
  Type.Literal('finalize_short'),
  Type.Literal('save_scenario'),
  Type.Literal('content_analysis'),
  Type.Literal('data_extraction'),
  Type.Literal('scraping')
])
export type TaskType = Static<typeof TaskType>

export const TaskSessionStatuses = ['active', 'completed', 'failed'] as const
export const TaskSessionStatus = Type.Union([Type.Literal('active'), Type.Literal('completed'), Type.Literal('failed')])
export type TaskSessionStatus = Static<typeof TaskSessionStatus>

/** Task ids: 1..128 of letters, digits and `_ . : -` (UUIDs and `task_789` alike). */
export const TaskId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' })
export const TASK_ID_MAX_LENGTH = 128
/** Short ids: 1..64 of letters, digits and `_ . : -`. */
export const ShortId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' })
export const SHORT_ID_MAX_LENGTH = 64

export const TaskSession = Type.Object(
  {
    taskId: Type.String(),
    shortId: Type.String(),
    taskType: TaskType,
    userId: Type.Union([Type.String(), Type.Null()]),
    status: TaskSessionStatus,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' })
  },
  { $id: 'TaskSession' }
)
export type TaskSession = Static<typeof TaskSession>

export const ShortIdParams = Type.Object({ shortId: ShortId }, { additionalProperties: false })
export type ShortIdParams = Static<typeof ShortIdParams>

export const TaskIdParams = Type.Object({ taskId: TaskId }, { additionalProperties: false })
export type TaskIdParams = Static<typeof TaskIdParams>

/** Filters and cursor paging (oldest first) for one short id's sessions. */
export const TaskSessionListQuery = Type.Object(
  {
    taskType: Type.Optional(TaskType),
    status: Type.Optional(TaskSessionStatus),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
  },
  { additionalProperties: false }
)
export type TaskSessionListQuery = Static<typeof TaskSessionListQuery>

export const TaskSessionList = Type.Object({
  shortId: Type.String(),
  sessions: Type.Array(TaskSession),
  /** Every session matching the filters (and visible to the caller), not only this page. */
  totalSessions: Type.Integer({ minimum: 0 }),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  timestamp: Type.String({ format: 'date-time' })
})
export type TaskSessionList = Static<typeof TaskSessionList>

export const TaskSessionErrorCodes = [
  'TASK_SESSION_NOT_FOUND',
  'INVALID_TASK_ID',
  'INVALID_SHORT_ID',
  'INVALID_CURSOR',
  'INVALID_EVENT_ENVELOPE',
  'UNKNOWN_EVENT_TYPE',
  'INVALID_EVENT_DATA',
  'INVALID_JSON',
  'UNSUPPORTED_MEDIA_TYPE'
] as const satisfies readonly ErrorCode[]

// ---- events in: task lifecycle, published by task producers --------------------------------------

export const TaskSubjects = {
  created: 'tasks.created',
  completed: 'tasks.completed',
  failed: 'tasks.failed',
  cancelled: 'tasks.cancelled',
  scenarioSaved: 'tasks.scenario.saved'
} as const

/** `data` of tasks.created/completed/failed/cancelled; producers may add fields of their own. */
export const TaskLifecycleData = Type.Object(
  {
    taskId: TaskId,
    taskType: TaskType,
    shortId: Type.Optional(Type.Union([ShortId, Type.Null()])),
    userId: Type.Optional(Type.Union([UserId, Type.Null()]))
  },
  { additionalProperties: true }
)
export type TaskLifecycleData = Static<typeof TaskLifecycleData>

/** `data` of tasks.scenario.saved: every scenario_generation session of this short id ends. */
export const ScenarioSavedData = Type.Object({ shortId: ShortId }, { additionalProperties: true })
export type ScenarioSavedData = Static<typeof ScenarioSavedData>

export const TaskCreated = EventEnvelope(TaskSubjects.created, TaskLifecycleData)
export const TaskCompleted = EventEnvelope(TaskSubjects.completed, TaskLifecycleData)
export const TaskFailed = EventEnvelope(TaskSubjects.failed, TaskLifecycleData)
export const TaskCancelled = EventEnvelope(TaskSubjects.cancelled, TaskLifecycleData)
export const ScenarioSaved = EventEnvelope(TaskSubjects.scenarioSaved, ScenarioSavedData)
export const TaskEvent = Type.Union([TaskCreated, TaskCompleted, TaskFailed, TaskCancelled, ScenarioSaved])
export type TaskEvent = Static<typeof TaskEvent>

/** A task event as the intake accepts it from any producer in structured mode (binary mode: docs/events.md). */
export const TaskEventReceived = Type.Union(
  Object.entries({
    [TaskSubjects.created]: TaskLifecycleData,
    [TaskSubjects.completed]: TaskLifecycleData,
    [TaskSubjects.failed]: TaskLifecycleData,
    [TaskSubjects.cancelled]: TaskLifecycleData,
    [TaskSubjects.scenarioSaved]: ScenarioSavedData
  }).map(([type, data]) => ReceivedEventEnvelope(type, data))
)

/** Event type → schema of its `data`: what a consumer of the TASKS stream validates against. */
export const TaskEventDataSchemas: Record<string, TSchema> = {
  [TaskSubjects.created]: TaskLifecycleData,
  [TaskSubjects.completed]: TaskLifecycleData,
  [TaskSubjects.failed]: TaskLifecycleData,
  [TaskSubjects.cancelled]: TaskLifecycleData,
  [TaskSubjects.scenarioSaved]: ScenarioSavedData
}

/** What the HTTP intake answers: the changes the event made (all zero for a duplicate). */
export const TaskEventAccepted = Type.Object({
  id: Type.String(),
  type: Type.String(),
  changes: Type.Object({
    created: Type.Integer({ minimum: 0 }),
    updated: Type.Integer({ minimum: 0 }),
    removed: Type.Integer({ minimum: 0 })
  })
})
export type TaskEventAccepted = Static<typeof TaskEventAccepted>

// ---- events out ---------------------------------------------------------------------------------

export const TaskSessionSubjects = {
  created: 'sessions.task.created',
  removed: 'sessions.task.removed'
} as const

export const TaskSessionRemovalReasons = ['completed', 'failed', 'cancelled', 'scenario_saved', 'deleted'] as const

export const TaskSessionEventData = Type.Object({
  taskId: Type.String(),
  shortId: Type.String(),
  taskType: TaskType,
  userId: Type.Union([Type.String(), Type.Null()]),
  status: TaskSessionStatus,
  /** Why a session was removed (sessions.task.removed only). */
  reason: Type.Optional(
    Type.Union([
      Type.Literal('completed'),
      Type.Literal('failed'),
      Type.Literal('cancelled'),
      Type.Literal('scenario_saved'),
      Type.Literal('deleted')
    ])
  )
})
export type TaskSessionEventData = Static<typeof TaskSessionEventData>

export const TaskSessionCreated = EventEnvelope(TaskSessionSubjects.created, TaskSessionEventData)
export const TaskSessionRemoved = EventEnvelope(TaskSessionSubjects.removed, TaskSessionEventData)

// ---- internal (service role, never routed by the gateway) ---------------------------------------

export const TaskSessionCleanupBody = Type.Object(
  {
    /** Overrides TASK_SESSION_RETENTION_DAYS for this run. */
    olderThanSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 50_000 }))
  },
  { additionalProperties: false }
)
export type TaskSessionCleanupBody = Static<typeof TaskSessionCleanupBody>

export const TaskSessionCleanupReply = Type.Object({
  removed: Type.Integer({ minimum: 0 }),
  batches: Type.Integer({ minimum: 0 }),
  errors: Type.Integer({ minimum: 0 }),
  durationMs: Type.Integer({ minimum: 0 }),
  /** Remembered finished task ids and scenario saves dropped after their retention. */
  finishedTasksPurged: Type.Integer({ minimum: 0 })
})
export type TaskSessionCleanupReply = Static<typeof TaskSessionCleanupReply>

const authErrors = { 401: e(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED']), 403: e(['FORBIDDEN']) }
const unavailable = { 503: e(['DATABASE_UNAVAILABLE'], 'with Retry-After') }

/** The task-session API as published through the gateway. */
export const TaskSessionRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/api/v1/task-sessions/{shortId}',
    tag: 'task sessions',
    auth: 'user',
    summary: 'Sessions of a short id, oldest first (a user sees their own; admin and service see all)',
    params: ShortIdParams,
    querystring: TaskSessionListQuery,
    responses: {
      200: { description: 'A page of sessions', schema: TaskSessionList },
      400: e(['INVALID_SHORT_ID', 'INVALID_CURSOR', 'VALIDATION_ERROR']),
      ...authErrors,
      ...unavailable
    }
  },
  {
    method: 'GET',
    path: '/api/v1/task-sessions/task/{taskId}',
    tag: 'task sessions',
    auth: 'user',
    summary: 'The session of a task',
    params: TaskIdParams,
    responses: {
      200: { description: 'The session', schema: TaskSession },
      400: e(['INVALID_TASK_ID']),
      404: e(['TASK_SESSION_NOT_FOUND']),
      ...authErrors,
      ...unavailable
    }
  },
  {
    method: 'DELETE',
    path: '/api/v1/task-sessions/task/{taskId}',
    tag: 'task sessions',
    auth: 'user',
    summary: 'Remove the session of a task',
    params: TaskIdParams,
    responses: {
      204: { description: 'Removed' },
      400: e(['INVALID_TASK_ID']),
      404: e(['TASK_SESSION_NOT_FOUND']),
      ...authErrors,
      ...unavailable
    }
  },
  {
    method: 'POST',
    path: '/api/v1/task-sessions/events',
    tag: 'task sessions',
    auth: 'service',
    summary: 'Task lifecycle event for producers that cannot publish to NATS (same handling; CloudEvents structured or binary mode)',
    body: TaskEventReceived,
    responses: {
      200: { description: 'Applied (a duplicate changes nothing)', schema: TaskEventAccepted },
      400: e(['INVALID_EVENT_ENVELOPE', 'UNKNOWN_EVENT_TYPE', 'INVALID_EVENT_DATA', 'INVALID_JSON']),
      415: e(['UNSUPPORTED_MEDIA_TYPE'], 'batched mode, another event format, or a body that is no event'),
      ...authErrors,
      ...unavailable
    }
  }
]
