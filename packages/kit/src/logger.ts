import type { FastifyBaseLogger, FastifyServerOptions, FastifyRequest } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

const SECRET_QUERY = /([?&](?:token|access_token|jwt)=)[^&]*/gi

/** Query strings may carry a WebSocket token: never let it reach the logs. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[Redacted]')
}

export function loggerOptions(level: string, service: string): FastifyServerOptions['logger'] {
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
        'token',
        '*.token',
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
    ...(process.stdout.isTTY && level !== 'silent' ? { transport: { target: 'pino-pretty' } } : {})
  }
}

type LogMethod = (...args: unknown[]) => void
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
    if ((LEVELS[level] as number) < (LEVELS[this.level] ?? 0)) return
    ;(this.child_()[level] as LogMethod)(...args)
  }

  private child_(): FastifyBaseLogger {
    return (this.real ??= this.parent.child(this.bindings, this.opts))
  }
}
