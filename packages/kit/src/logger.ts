import type { FastifyServerOptions, FastifyRequest } from 'fastify'

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
