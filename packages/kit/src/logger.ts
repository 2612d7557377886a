import { Writable } from 'node:stream'
import { LogController, type FastifyBaseLogger, type FastifyServerOptions, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'
import { prettyFactory } from 'pino-pretty'

const SECRET_QUERY = /([?&](?:token|access_token|jwt)=)[^&]*/gi

/** Query strings may carry a WebSocket token: never let it reach the logs. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[Redacted]')
}

/** `LOG_FORMAT`: `auto` is pretty on a terminal, JSON lines otherwise. */
export type LogFormatSetting = 'auto' | 'pretty' | 'json'
export type LogFormat = 'pretty' | 'json'
export const LOG_FORMATS: readonly LogFormatSetting[] = ['auto', 'pretty', 'json']

/** The format to write: as asked, or for `auto` (the default) pretty only when stdout is a terminal. */
export function logFormat(setting: LogFormatSetting | undefined, isTTY: boolean): LogFormat {
  if (setting === 'pretty' || setting === 'json') return setting
  return isTTY ? 'pretty' : 'json'
}

export interface LogOutput {
  /** `LOG_FORMAT` [auto]. */
  format?: LogFormatSetting
  /** Whether stdout is a terminal: decides `auto`, and colours. Default: `process.stdout.isTTY`. */
  isTTY?: boolean
  /** Where lines go instead of stdout (tests). */
  destination?: NodeJS.WritableStream
}

/**
 * Pino options for a service: its name on every line, secrets redacted, and JSON lines or, in pretty
 * format, readable lines prettified in the process (pretty is for a person at a terminal; it is
 * printed from the same redacted JSON).
 */
export function loggerOptions(level: string, service: string, output: LogOutput = {}): FastifyServerOptions['logger'] {
  const isTTY = output.isTTY ?? process.stdout.isTTY === true
  const pretty = level !== 'silent' && logFormat(output.format, isTTY) === 'pretty'
  const stream = pretty ? prettyStream({ colorize: isTTY, destination: output.destination }) : output.destination
  return {
    level,
    base: { service },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["set-cookie"]',
        'req.headers["sec-websocket-protocol"]',
        'headers.authorization',
        'headers.cookie',
        'headers["set-cookie"]',
        'headers["sec-websocket-protocol"]',
        'token',
        '*.token',
        'accessToken',
        '*.accessToken',
        'refreshToken',
        '*.refreshToken',
        'password',
        '*.password'
      ],
      censor: '[Redacted]'
    },
    serializers: {
      req(req: FastifyRequest) {
        return { method: req.method, url: redactUrl(req.url), remoteAddress: req.ip, requestId: req.id }
      }
    },
    ...(stream ? { stream } : {})
  }
}

// ------------------------------------------------------------------ pretty lines

const COLOURS = [36, 35, 33, 32, 34, 96, 95, 93, 92, 94]
const colourOf = (name: string): number => {
  let h = 0
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0
  return COLOURS[h % COLOURS.length] ?? 39
}

/** Service names are padded to this width so messages line up. */
const PREFIX_WIDTH = 14

/**
 * Turns one JSON log line into one readable line: the service name first (a colour per service),
 * then time, level and message, the other fields inline; a request's line reads `GET /path 200 (3 ms)`.
 * A line that is not JSON (a crash's stack trace) is kept as it is, behind the prefix of `fallbackService`.
 */
export function prettyLine(opts: { colorize: boolean }): (line: string, fallbackService?: string) => string {
  const pretty = prettyFactory({
    colorize: opts.colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service'
  })
  const prefix = (service: string) => {
    const name = service.padEnd(PREFIX_WIDTH)
    return opts.colorize ? `\x1b[${colourOf(service)}m${name}\x1b[39m` : name
  }
  return (line, fallbackService = '') => {
    const log = line.startsWith('{') ? parseObject(line) : null
    if (!log) return `${prefix(fallbackService)} ${line}`
    const service = typeof log.service === 'string' ? log.service : fallbackService
    return `${prefix(service)} ${pretty(readableRequest(log)).trimEnd()}`
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseObject(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line)
    return isObject(value) ? value : null
  } catch {
    return null
  }
}

/** `request completed` with its req/res objects becomes `GET /path 200 (3 ms)`. */
function readableRequest(log: Record<string, unknown>): Record<string, unknown> {
  const { req, res, responseTime, ...rest } = log
  if (log.msg !== 'request completed' || !isObject(req) || !isObject(res)) return log
  const ms = typeof responseTime === 'number' ? ` (${responseTime < 10 ? responseTime.toFixed(1) : Math.round(responseTime)} ms)` : ''
  return { ...rest, msg: `${String(req.method)} ${String(req.url)} ${String(res.statusCode)}${ms}` }
}

/** A destination for pino that writes each JSON line prettified (synchronously, as pino expects). */
export function prettyStream(opts: { colorize: boolean; destination?: NodeJS.WritableStream | undefined }): Writable {
  const format = prettyLine({ colorize: opts.colorize })
  const out = opts.destination ?? process.stdout
  let rest = ''
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, done) {
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) if (line) out.write(`${format(line)}\n`)
      done()
    }
  })
}

// ------------------------------------------------------------------ request log lines

/** Probes an orchestrator or Prometheus calls every few seconds: logged at debug, not info. */
const PROBE_ROUTES = new Set(['/health', '/ready', '/metrics'])

function isProbe(request: FastifyRequest): boolean {
  const route = request.routeOptions.url
  if (route !== undefined) return PROBE_ROUTES.has(route)
  const q = request.url.indexOf('?')
  return PROBE_ROUTES.has(q < 0 ? request.url : request.url.slice(0, q))
}

/**
 * Fastify's own request lines, one per request: `request completed` (method, url, status, time) at
 * info, at debug for /health, /ready and /metrics; `incoming request` only at debug; errors as Fastify
 * logs them.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    } else if (isProbe(request)) {
      reply.log.debug({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
    } else {
      reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
    }
  }
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
const LEVELS: Record<string, number> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10, silent: Infinity }

/**
 * A request's logger that becomes a pino child only when it logs at an enabled level. Most requests log
 * nothing, and a child per request (bindings serialized up front) is one of the larger costs of a busy
 * service. Fastify builds one per request through `childLoggerFactory`.
 */
export class LazyChildLogger {
  private real: FastifyBaseLogger | null = null

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly opts: ChildLoggerOptions
  ) {}

  get level(): string {
    return this.real?.level ?? this.opts.level ?? this.parent.level
  }

  set level(level: string) {
    this.child_().level = level
  }

  fatal(...args: unknown[]): void {
    this.log('fatal', args)
  }

  error(...args: unknown[]): void {
    this.log('error', args)
  }

  warn(...args: unknown[]): void {
    this.log('warn', args)
  }

  info(...args: unknown[]): void {
    this.log('info', args)
  }

  debug(...args: unknown[]): void {
    this.log('debug', args)
  }

  trace(...args: unknown[]): void {
    this.log('trace', args)
  }

  silent(): void {}

  child(bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger {
    return this.child_().child(bindings, opts)
  }

  private log(level: Level, args: unknown[]): void {
    if ((LEVELS[level] ?? 0) < (LEVELS[this.level] ?? 0)) return
    const child = this.child_()
    // pino's LogFn is a set of overloads that a spread of unknowns cannot pick from.
    Reflect.apply(child[level], child, args)
  }

  private child_(): FastifyBaseLogger {
    return (this.real ??= this.parent.child(this.bindings, this.opts))
  }
}
