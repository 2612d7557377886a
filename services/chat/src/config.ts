import { join } from 'node:path'
import { Type, type Static } from 'typebox'
import { serviceConfig } from '@platform/kit'

/** The knowledge file of the built-in responder that ships with the service. */
export const DEFAULT_KNOWLEDGE_PATH = join(import.meta.dirname, '..', 'knowledge', 'faq.json')

export const ConfigSchema = serviceConfig(
  { port: 3003, schema: 'chat', name: 'chat' },
  {
    /** Connections without a token chat as userType anonymous; a bad token is refused (4401) either way. */
    CHAT_ALLOW_ANONYMOUS: Type.Boolean({ default: true }),
    MAX_MESSAGE_LENGTH: Type.Integer({ minimum: 1, maximum: 15_000, default: 2000 }),
    MAX_HISTORY_MESSAGES: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    /** The most messages a resume replays; a larger gap gets the latest MAX_HISTORY_MESSAGES (recovered=false). */
    MAX_REPLAY_MESSAGES: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
    RATE_LIMIT_MESSAGES_PER_MINUTE: Type.Integer({ minimum: 1, default: 10 }),
    /** The rate-limit window; a minute unless a test shortens it. */
    RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 100, default: 60_000 }),
    SESSION_TIMEOUT_HOURS: Type.Number({ exclusiveMinimum: 0, default: 24 }),
    CHAT_RETENTION_DAYS: Type.Number({ minimum: 0, default: 30 }),
    CLEANUP_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 10_000, default: 500 }),
    HEARTBEAT_INTERVAL_MS: Type.Integer({ minimum: 50, default: 25_000 }),
    WS_MAX_PAYLOAD_BYTES: Type.Integer({ minimum: 1024, default: 16 * 1024 }),
    /** A connection whose unsent buffer passes this is closed with 4008 (slow consumer). */
    WS_MAX_BUFFERED_BYTES: Type.Integer({ minimum: 1024, default: 1024 * 1024 }),
    /** Frames a connection may have waiting to be processed; more get RATE_LIMITED. */
    WS_MAX_PENDING_FRAMES: Type.Integer({ minimum: 1, default: 32 }),
    /** At most one typing relay per connection in this interval, unless isTyping changes. */
    TYPING_THROTTLE_MS: Type.Integer({ minimum: 0, default: 1000 }),
    /** How long a missing seq may wait for its live frame before it is read from Postgres. */
    GAP_FILL_DELAY_MS: Type.Integer({ minimum: 1, default: 100 }),
    /** Graceful shutdown: time for in-flight messages before clients get 1012 anyway. */
    SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10_000 }),

    ASSISTANT_ENABLED: Type.Boolean({ default: true }),
    /** OpenAI-compatible base URL (e.g. https://api.openai.com/v1) or full /chat/completions URL; unset = built-in responder. */
    ASSISTANT_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
    ASSISTANT_API_KEY: Type.Optional(Type.String({ minLength: 1 })),
    ASSISTANT_MODEL: Type.String({ minLength: 1, default: 'gpt-4o-mini' }),
    ASSISTANT_SYSTEM_PROMPT: Type.String({
      default: 'You are the helpful assistant of a session platform. Answer briefly and in the language of the user.'
    }),
    /** How many recent messages of the session the endpoint is given. */
    ASSISTANT_HISTORY_MESSAGES: Type.Integer({ minimum: 1, maximum: 200, default: 20 }),
    ASSISTANT_KNOWLEDGE_PATH: Type.String({ minLength: 1, default: DEFAULT_KNOWLEDGE_PATH }),
    RESPONSE_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, default: 30 }),
    ASSISTANT_BREAKER_ERROR_PERCENT: Type.Integer({ minimum: 1, maximum: 100, default: 50 }),
    /** Calls in the rolling window before the breaker may open. */
    ASSISTANT_BREAKER_VOLUME: Type.Integer({ minimum: 1, default: 5 }),
    ASSISTANT_BREAKER_WINDOW_MS: Type.Integer({ minimum: 100, default: 10_000 }),
    /** How long the breaker stays open before a half-open probe. */
    ASSISTANT_BREAKER_RESET_MS: Type.Integer({ minimum: 10, default: 30_000 })
  }
)
export type Config = Static<typeof ConfigSchema>
