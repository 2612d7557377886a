import { randomUUID } from 'node:crypto'
import type { FastifyServerOptions } from 'fastify'
import { LazyChildLogger, RequestLogController, loggerOptions, type LogFormatSetting } from './logger.js'
import { clientErrorHandler, frameworkErrorHandler } from './plugins/error-handler.js'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** A client's x-request-id is kept when it is sane; otherwise one is generated. */
export function requestId(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID()
}

export interface ServerOptionsInput {
  LOG_LEVEL: string
  /** auto (pretty on a terminal) when absent. */
  LOG_FORMAT?: LogFormatSetting
  SERVICE_NAME: string
  BODY_LIMIT_BYTES: number
}

/**
 * The Fastify options every service (and every test) builds with, so both behave the same. What Node's
 * parser and Fastify's router refuse before any hook runs is answered in the JSON error shape too.
 */
export function fastifyOptions(config: ServerOptionsInput, overrides: FastifyServerOptions = {}): FastifyServerOptions {
  return {
    logger: loggerOptions(config.LOG_LEVEL, config.SERVICE_NAME, { format: config.LOG_FORMAT ?? 'auto' }),
    logController: new RequestLogController(),
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId: (req) => requestId(req.headers['x-request-id']),
    childLoggerFactory: (logger, bindings, opts) => new LazyChildLogger(logger, bindings, opts),
    connectionTimeout: 30_000,
    keepAliveTimeout: 72_000,
    requestTimeout: 60_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 512 },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    ...overrides
  }
}
