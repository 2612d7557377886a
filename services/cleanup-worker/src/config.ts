import { Type, type Static } from 'typebox'
import { serviceConfig } from '@platform/kit'

/** Minutes; fractions are allowed (0.01 = 600 ms) so tests can run schedules quickly. */
const interval = (description: string) => Type.Optional(Type.Number({ exclusiveMinimum: 0, description }))
const KIND_LIST = '(login_sessions|task_sessions|chat_sessions|named_sessions)'

export const ConfigSchema = serviceConfig(
  { port: 3004, schema: 'cleanup_worker', name: 'cleanup-worker' },
  {
    SESSIONS_URL: Type.String({ pattern: '^https?://', default: 'http://127.0.0.1:3001' }),
    TASK_SESSIONS_URL: Type.String({ pattern: '^https?://', default: 'http://127.0.0.1:3002' }),
    CHAT_URL: Type.String({ pattern: '^https?://', default: 'http://127.0.0.1:3003' }),

    SESSION_CLEANUP_INTERVAL_MINUTES: Type.Number({ exclusiveMinimum: 0, default: 15 }),
    LOGIN_SESSIONS_CLEANUP_INTERVAL_MINUTES: interval('overrides SESSION_CLEANUP_INTERVAL_MINUTES for login sessions'),
    TASK_SESSIONS_CLEANUP_INTERVAL_MINUTES: interval('overrides SESSION_CLEANUP_INTERVAL_MINUTES for task sessions'),
    CHAT_SESSIONS_CLEANUP_INTERVAL_MINUTES: interval('overrides SESSION_CLEANUP_INTERVAL_MINUTES for chat sessions'),
    NAMED_SESSIONS_CLEANUP_INTERVAL_MINUTES: interval('overrides SESSION_CLEANUP_INTERVAL_MINUTES for named sessions'),
    /** Which kinds get a schedule: `all`, `none` or a comma-separated list (named sessions also need their age). */
    CLEANUP_SCHEDULES: Type.String({ pattern: `^(all|none|${KIND_LIST}(,${KIND_LIST})*)$`, default: 'all' }),
    /** Named sessions expire only when this is set (days; fractions allowed). */
    NAMED_SESSION_MAX_AGE_DAYS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    SESSION_CLEANUP_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
    ACTIVE_SESSIONS_ALERT: Type.Integer({ minimum: 0, default: 1000 }),

    /** BullMQ key prefix, after REDIS_KEY_PREFIX: keys are `<REDIS_KEY_PREFIX><CLEANUP_QUEUE_PREFIX>:<queue>:…`. */
    CLEANUP_QUEUE_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_.:-]+$', default: 'bull' }),
    CLEANUP_QUEUE_NAME: Type.String({ pattern: '^[A-Za-z0-9_.-]+$', default: 'session-cleanup' }),
    /** Jobs run at once per replica: one per kind, so a slow kind never holds back the others. */
    CLEANUP_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 4 }),
    /** BullMQ attempts per run and the first retry delay (exponential). */
    CLEANUP_JOB_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 3 }),
    CLEANUP_JOB_BACKOFF_MS: Type.Integer({ minimum: 0, default: 30_000 }),
    /** A crashed replica's job goes back to the queue once its lock expires (renewed every half of it). */
    CLEANUP_JOB_LOCK_MS: Type.Integer({ minimum: 200, default: 30_000 }),
    CLEANUP_STALLED_INTERVAL_MS: Type.Integer({ minimum: 100, default: 30_000 }),
    /** Finished runs are kept this long in the run history. */
    CLEANUP_HISTORY_RETENTION_DAYS: Type.Number({ exclusiveMinimum: 0, default: 90 }),
    /** How long POST /api/v1/admin/cleanup/run waits for the result before answering 202. */
    CLEANUP_RUN_WAIT_MS: Type.Integer({ minimum: 0, maximum: 25_000, default: 5000 }),

    /** Per call to an owning service: timeout, retries with exponential backoff, breaker. */
    CLEANUP_CALL_TIMEOUT_MS: Type.Integer({ minimum: 50, default: 120_000 }),
    CLEANUP_CALL_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
    CLEANUP_RETRY_BASE_MS: Type.Integer({ minimum: 0, default: 1000 }),
    CLEANUP_RETRY_MAX_MS: Type.Integer({ minimum: 0, default: 15_000 }),
    CLEANUP_BREAKER_ERROR_PERCENTAGE: Type.Integer({ minimum: 1, maximum: 100, default: 50 }),
    CLEANUP_BREAKER_MIN_VOLUME: Type.Integer({ minimum: 1, default: 3 }),
    CLEANUP_BREAKER_RESET_MS: Type.Integer({ minimum: 10, default: 30_000 }),
    /** Figures from GET /internal/cleanup/stats: per-call timeout and how long they are reused. */
    CLEANUP_STATS_TIMEOUT_MS: Type.Integer({ minimum: 50, default: 2000 }),
    CLEANUP_STATS_CACHE_MS: Type.Integer({ minimum: 0, default: 10_000 }),
    /** Lifetime of the service token the worker mints for its calls. */
    SERVICE_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 30, default: 300 })
  }
)
export type Config = Static<typeof ConfigSchema>
