import { Type, type Static, type TObject, type TProperties } from 'typebox'
import { Value } from 'typebox/value'

/** Used only when JWT_SECRET is unset, with a warning at start; never use it outside development. */
export const DEV_JWT_SECRET = 'dev-only-secret-change-me-0123456789abcdef'

/** Variables every service reads. A service adds its own with `serviceConfig`. */
export const BaseConfigProperties = {
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development'
  }),
  HOST: Type.String({ default: '0.0.0.0' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  /** auto: pretty lines on a terminal, JSON lines otherwise; pretty or json to choose. */
  LOG_FORMAT: Type.Union([Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')], { default: 'auto' }),
  DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://', default: 'postgresql://postgres@127.0.0.1:5432/platform' }),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  DATABASE_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 3000 }),
  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  REDIS_KEY_PREFIX: Type.String({ default: '' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 500 }),
  /** Consecutive command timeouts after which a Redis connection counts as down and is dropped (a frozen server). */
  REDIS_FAILURE_THRESHOLD: Type.Integer({ minimum: 1, maximum: 1000, default: 3 }),
  NATS_URL: Type.String({ default: 'nats://127.0.0.1:4222' }),
  /** Prefixes every subject and stream name: lets tests and tenants share one NATS server. */
  NATS_NAMESPACE: Type.String({ pattern: '^([A-Za-z0-9_-]+)?$', default: '' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_CLOCK_TOLERANCE_SECONDS: Type.Integer({ minimum: 0, maximum: 300, default: 5 }),
  /** An identity provider's JWKS: RS256/ES256 tokens are verified with its keys (by `kid`), beside HS256. */
  JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** Algorithms accepted from the JWKS, comma-separated; HS256 always comes from JWT_SECRET only. */
  JWT_JWKS_ALGORITHMS: Type.String({
    pattern: '^(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512)(,(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512))*$',
    default: 'RS256,ES256'
  }),
  /** An unknown `kid` re-fetches the JWKS at most once per this interval, so random kids cannot flood the provider. */
  JWKS_REFETCH_INTERVAL_SECONDS: Type.Number({ minimum: 0.01, default: 60 }),
  /** Known keys are refreshed in the background this often (picks up revocations); 0 = only on unknown kids. */
  JWKS_CACHE_TTL_SECONDS: Type.Number({ minimum: 0, default: 600 }),
  JWKS_TIMEOUT_MS: Type.Integer({ minimum: 50, default: 3000 }),
  /** Verified tokens kept in memory (expiry still applies, a minute at most); 0 = no cache. */
  JWT_VERIFY_CACHE_SIZE: Type.Integer({ minimum: 0, default: 0 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1048576 }),
  /** After an answer that closes the connection while the body is still coming (413…), bytes of the rest read and thrown away first (default 2 × the body limit, at least 20 MiB: what the gateway may still be sending; 0 = none). */
  REQUEST_DRAIN_BYTES: Type.Optional(Type.Integer({ minimum: 0 })),
  /** …and for at most this long. */
  REQUEST_DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 5000 }),
  OUTBOX_POLL_MS: Type.Integer({ minimum: 10, default: 500 }),
  OUTBOX_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
  OUTBOX_RETENTION_SECONDS: Type.Integer({ minimum: 0, default: 3600 })
}

export type BaseConfig = Static<TObject<typeof BaseConfigProperties>>

/** A service's config: the base variables plus its own, with its own PORT and schema defaults. */
export function serviceConfig<P extends TProperties>(defaults: { port: number; schema: string; name: string }, properties: P) {
  return Type.Object({
    ...BaseConfigProperties,
    SERVICE_NAME: Type.String({ default: defaults.name }),
    PORT: Type.Integer({ minimum: 0, maximum: 65535, default: defaults.port }),
    DATABASE_SCHEMA: Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$', default: defaults.schema }),
    ...properties
  })
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
  }
}

/**
 * Reads the variables a schema names from `env`, applies defaults and converts types.
 * Throws ConfigError naming every bad or missing variable, so a service refuses to boot.
 */
export function loadConfig<T extends TObject>(schema: T, env: Record<string, string | undefined> = process.env): Static<T> {
  const picked: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') picked[key] = value
  }
  const value = Value.Convert(schema, Value.Default(schema, picked))
  if (Value.Check(schema, value)) return value
  const problems = [...Value.Errors(schema, value)].map((e) => {
    const name = e.instancePath.replace(/^\//, '') || String((e.params as { requiredProperties?: string[] }).requiredProperties ?? '')
    const got = name && picked[name] !== undefined ? ` (got ${JSON.stringify(picked[name])})` : ''
    return `${name || '(root)'}: ${e.message}${got}`
  })
  throw new ConfigError([...new Set(problems)])
}
