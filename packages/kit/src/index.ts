export * from './config.js'
export * from './errors.js'
export * from './logger.js'
export * from './server-options.js'
export * from './server.js'
export * from './token.js'
export { errorHandlerPlugin, sendError, frameworkErrorHandler, clientErrorHandler, DATABASE_RETRY_AFTER_SECONDS } from './plugins/error-handler.js'
export {
  bodyDrainPlugin,
  BodyDrain,
  drainOptions,
  hasBody,
  MIN_SERVICE_DRAIN_BYTES,
  type BodyDrainOptions,
  type DrainEnd,
  type DrainMetrics
} from './plugins/body-drain.js'
export {
  authPlugin,
  actingUserId,
  bearerToken,
  toPrincipal,
  tokenError,
  type Principal,
  type AuthOptions,
  authOptions,
  type AuthJwksOptions
} from './plugins/auth.js'
export { JwksKeySet, jwtHeader, type JwksOptions, type JwksKey } from './jwks.js'
export { metricsPlugin, type MetricsOptions } from './plugins/metrics.js'
export { BoundHistogram } from './bound-histogram.js'
export { healthPlugin, createReadiness, type Readiness, type ReadinessCheck, type HealthReport } from './plugins/health.js'
export { dbPlugin, createPool, qualified, type DbOptions } from './plugins/db.js'
export { redisPlugin, createRedis, type RedisOptions } from './plugins/redis.js'
export { natsPlugin, namespaced, createNatsClient, type NatsHandle, type NatsOptions, type NatsClient } from './plugins/nats.js'
export { outboxRelayPlugin, relayBatch, createOutboxRelay, type OutboxRelayOptions, type OutboxRelay } from './outbox/relay.js'
export { createEvent, outboxRow, type Envelope, type PublishedEnvelope } from './events/envelope.js'
export {
  eventValidator,
  decodeEvent,
  parseStructured,
  parseBinary,
  checkStructured,
  messageKind,
  isJsonContentType,
  decodeHeaderValue,
  rfc3339,
  type ContentMode,
  type MessageKind,
  type EventMessage,
  type EventHeaders,
  type DecodedEvent,
  type EventCheck,
  type EventRejection
} from './events/cloudevents.js'
export { ensureStream, streamNameFor, streamSubjects } from './events/streams.js'
export { isDatabaseUnavailable } from './db/errors.js'
export { migrate, ensureDatabase, readMigrations } from './db/migrate.js'
export { platformPlugins, type PlatformOptions } from './platform.js'
export { defineService, type ServiceParts } from './service.js'
export {
  createEventConsumer,
  eventConsumer,
  type EventConsumer,
  type StartableEventConsumer,
  type ConsumerRuntime,
  type EventConsumerOptions,
  type ConsumedEvent,
  type ConsumerStats,
  type DeadLetter,
  type DeadLetterReason
} from './events/consumer.js'
export {
  InvalidCursorError,
  encodeCursor,
  decodeCursor,
  decodeSerialCursor,
  keyset,
  keysetPage,
  afterPosition,
  type After,
  type Keyset,
  type Order,
  type Position
} from './cursor.js'
export { createBreaker, breakerState, type BreakerOptions, type BreakerState } from './breaker.js'
export { prismaPlugin } from './plugins/prisma.js'
