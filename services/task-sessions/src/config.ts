import { Type, type Static } from 'typebox'
import { serviceConfig } from '@platform/kit'

export const ConfigSchema = serviceConfig(
  { port: 3002, schema: 'task_sessions', name: 'task-sessions' },
  {
    /** Completed/failed sessions older than this are removed by POST /internal/cleanup. */
    TASK_SESSION_RETENTION_DAYS: Type.Number({ minimum: 0, default: 7 }),
    /** How long finished task ids and scenario saves are remembered; at least the TASKS stream's max age (7 days). */
    FINISHED_TASK_RETENTION_DAYS: Type.Number({ minimum: 0, default: 7 }),
    TASK_SESSION_CLEANUP_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 50_000, default: 5000 }),
    /** Cleanup pauses this many times as long as each batch took: 2 = a third of the time deleting, so readers keep their latency. */
    TASK_SESSION_CLEANUP_PAUSE_RATIO: Type.Number({ minimum: 0, maximum: 10, default: 2 }),
    /** The durable consumer every replica shares. */
    TASK_EVENTS_DURABLE: Type.String({ pattern: '^[A-Za-z0-9_-]+$', default: 'task-sessions' }),
    TASK_EVENTS_ENABLED: Type.Boolean({ default: true }),
    TASK_EVENTS_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
    TASK_EVENTS_MAX_ACK_PENDING: Type.Integer({ minimum: 1, default: 4000 }),
    TASK_EVENTS_MAX_DELIVERIES: Type.Integer({ minimum: 1, default: 10 }),
    TASK_EVENTS_ACK_WAIT_MS: Type.Integer({ minimum: 1000, default: 5_000 }),
    TASK_EVENTS_BACKOFF_MS: Type.Integer({ minimum: 1, default: 500 }),
    TASK_EVENTS_MAX_BACKOFF_MS: Type.Integer({ minimum: 1, default: 30_000 })
  }
)
export type Config = Static<typeof ConfigSchema>
