import { Type, type Static } from 'typebox'
import { serviceConfig } from '@platform/kit'

export const ConfigSchema = serviceConfig(
  { port: 3001, schema: 'sessions', name: 'sessions' },
  {
    ACTIVE_SESSION_CACHE_TTL_SECONDS: Type.Integer({ minimum: 1, default: 3600 }),
    MAX_CONCURRENT_SESSIONS: Type.Integer({ minimum: 1, default: 5 }),
    LOGIN_SESSION_OVERFLOW: Type.Union([Type.Literal('end_oldest'), Type.Literal('deny_new')], { default: 'end_oldest' }),
    SESSION_INACTIVITY_TIMEOUT: Type.Integer({ minimum: 1, default: 3600, description: 'seconds' }),
    LOGIN_SESSION_MAX_AGE: Type.Integer({ minimum: 1, default: 1209600, description: 'seconds' }),
    LOGIN_ORPHAN_AGE_SECONDS: Type.Integer({ minimum: 1, default: 86400 }),
    CHAT_INTERACTIONS_DURABLE: Type.String({ pattern: '^[A-Za-z0-9_-]+$', default: 'sessions-chat-interactions' }),
    NAMED_SESSION_MAX_AGE_DAYS: Type.Optional(Type.Integer({ minimum: 1 })),
    SESSION_CLEANUP_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })
  }
)
export type Config = Static<typeof ConfigSchema>
