import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import { WebSocketServer } from 'ws'
import type { Dispatcher } from 'undici'
import { requestId as requestIdOf, type Principal } from '@platform/kit'
import { DEGRADATION_MODE_HEADER, DEGRADATION_REASON_HEADER, degradationHeaders, joinDegradation, type DegradationMode } from '@platform/contracts'
import { WebSocketRoutes } from '../domain/route-table.js'
import { clientAddress, compileAddressList } from '../domain/addresses.js'
import { isHopByHop, upstreamHeaders } from '../domain/headers.js'
import { rateLimitFor, RateLimitGroups } from '../domain/rate-limits.js'
import type { UpstreamInstance } from './upstreams.js'

export interface WebSocketProxyOptions {
  trustedProxies: string
  rateLimit: { enabled: boolean; windowMs: number; anonymous: number; authenticated: number }
  /** Time for the upstream to complete its side of the handshake. */
  timeoutMs: number
  /** Longest request target (MAX_URL_LENGTH): 414 beyond. */
  maxUrlLength: number
}

/** The close code of a refused token (docs/architecture.md, Identity). */
const UNAUTHORIZED = 4401
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const TOKEN_PREFIX = /^(bearer|access_token|jwt)\./i

function offeredProtocols(header: string | undefined): string[] {
  return header ? header.split(',').map((p) => p.trim()).filter(Boolean) : []
}

/** `?token=` first, else an offered subprotocol shaped like a JWT (optionally `bearer.<jwt>`). */
function tokenOf(url: string, protocols: string[]): string | undefined {
  const q = url.indexOf('?')
  if (q !== -1) {
    const fromQuery = new URLSearchParams(url.slice(q + 1)).get('token')
    if (fromQuery) return fromQuery
  }
  for (const p of protocols) {
    const candidate = p.replace(TOKEN_PREFIX, '')
    if (JWT_SHAPE.test(candidate)) return candidate
  }
  return undefined
}

/** An HTTP answer to an upgrade that will not happen, in the platform's error shape. */
function refuse(socket: Duplex, status: number, code: string, message: string, requestId: string, headers: Record<string, string> = {}) {
  const retryAfter = headers['retry-after'] ? { retryAfter: Number(headers['retry-after']) } : {}
  const body = JSON.stringify({ error: STATUS_CODES[status] ?? 'Error', message, code, requestId, ...retryAfter })
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    `x-request-id: ${requestId}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)
  ]
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`)
}

/**
 * The gateway's own modes first, then those the upstream's handshake answer carried (their reasons
 * kept when they pair up), as on relayed HTTP replies.
 */
function joinUpstreamDegradation(headers: IncomingHttpHeaders, own: readonly string[]) {
  const values = degradationHeaders(own)
  const theirs = headers[DEGRADATION_MODE_HEADER]
  if (typeof theirs === 'string') {
    const target = { getHeader: (name: string) => values[name], header: (name: string, value: string) => (values[name] = value) }
    joinDegradation(target, theirs, headers[DEGRADATION_REASON_HEADER] as string | undefined)
  }
  Object.assign(headers, values)
}

/** The 101 the client receives: the upstream's own handshake answer (its Accept, protocol, extensions). */
function switchingProtocols(upstream: IncomingHttpHeaders, requestId: string): string {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'upgrade: websocket', 'connection: Upgrade']
  for (const [name, value] of Object.entries(upstream)) {
    if (isHopByHop(name) || name === 'x-request-id' || value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`)
  }
  lines.push(`x-request-id: ${requestId}`)
  return `${lines.join('\r\n')}\r\n\r\n`
}

/**
 * WebSocket upgrades (/ws/chat): the token is checked at the upgrade (a bad one completes the handshake
 * and closes with 4401 so the client learns why), the request is counted by the rate limiter, then the
 * upstream's handshake is relayed and the two TCP streams are joined: every frame, subprotocol,
 * extension and close code passes unchanged, and when either side closes the other is closed.
 */
export const webSocketProxyPlugin = fp<WebSocketProxyOptions>(
  async (fastify, opts) => {
    const trust = compileAddressList(opts.trustedProxies)
    const reads = RateLimitGroups[0] as (typeof RateLimitGroups)[number]
    const joined = new Set<Duplex>()
    let closing = false

    // Only for refusals: completes a handshake so the client can read the 4401.
    const refusals = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => {
        const list = [...protocols]
        return list.find((p) => !JWT_SHAPE.test(p.replace(TOKEN_PREFIX, ''))) ?? list[0] ?? false
      }
    })

    const join = (client: Duplex, upstream: Duplex) => {
      joined.add(client)
      // One side closed: the other is ended (what was already relayed, a close frame included, is
      // flushed first) and destroyed if it does not finish on its own.
      const closeOther = (other: Duplex) => () => {
        joined.delete(client)
        if (other.destroyed) return
        other.end()
        setTimeout(() => other.destroy(), 2000).unref()
      }
      client.on('close', closeOther(upstream)).on('error', () => upstream.destroy())
      upstream.on('close', closeOther(client)).on('error', () => client.destroy())
      client.pipe(upstream)
      upstream.pipe(client)
    }

    const connect = async (instance: UpstreamInstance, req: IncomingMessage, headers: Record<string, string | string[]>) =>
      (await instance.breaker.fire(() =>
        instance.pool.upgrade({
          path: req.url ?? '/',
          method: 'GET',
          headers,
          protocol: 'websocket',
          signal: AbortSignal.timeout(opts.timeoutMs)
        })
      )) as Dispatcher.UpgradeData

    const handle = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      const requestId = requestIdOf(req.headers['x-request-id'])
      const serviceName = WebSocketRoutes[path]
      if (closing) return refuse(socket, 503, 'SERVICE_UNAVAILABLE', 'The gateway is shutting down; reconnect', requestId)
      if (!serviceName) return refuse(socket, 404, 'NOT_FOUND', `No WebSocket route ${path}`, requestId)
      if (url.length > opts.maxUrlLength) {
        return refuse(socket, 414, 'URI_TOO_LONG', `The path and query are longer than the ${opts.maxUrlLength} characters the gateway accepts`, requestId)
      }

      const protocols = offeredProtocols(req.headers['sec-websocket-protocol'])
      const token = tokenOf(url, protocols)
      let identity: Principal | null = null
      if (token !== undefined) {
        try {
          identity = await fastify.verifyTokenAsync(token)
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'TOKEN_INVALID'
          return refusals.handleUpgrade(req, socket, head, (ws) => ws.close(UNAUTHORIZED, code))
        }
      }

      const clientIp = clientAddress(req, trust)
      const degraded: DegradationMode[] = []
      if (opts.rateLimit.enabled) {
        const limit = rateLimitFor(serviceName, reads, opts.rateLimit)
        const max = identity ? limit.authenticated : limit.anonymous
        const key = `${limit.bucket}:${identity ? `u:${identity.sub}` : `ip:${clientIp}`}`
        const hit = await fastify.rateLimiter.count(key, opts.rateLimit.windowMs, max)
        if (hit.local) degraded.push('rate_limit_local')
        if (hit.current > max) {
          const seconds = Math.max(1, Math.ceil(hit.ttl / 1000))
          fastify.gatewayMetrics.rateLimitRejections.inc({
            identity: identity ? 'authenticated' : 'anonymous',
            store: hit.local ? 'local' : 'shared'
          })
          return refuse(socket, 429, 'RATE_LIMITED', `Too many requests: retry after ${seconds} seconds (Retry-After)`, requestId, {
            'retry-after': String(seconds),
            'ratelimit-limit': String(max),
            'ratelimit-remaining': '0',
            'ratelimit-reset': String(seconds),
            ...degradationHeaders(degraded)
          })
        }
      }

      const service = fastify.upstreams.get(serviceName)
      const headers = upstreamHeaders(req.headers, { requestId, clientIp, host: req.headers.host, proto: 'http' })
      for (let attempt = 0; attempt < service.instances.length; attempt++) {
        const instance = service.pick()
        if (!instance) break
        let upgraded: Dispatcher.UpgradeData
        try {
          upgraded = await connect(instance, req, headers)
        } catch (err) {
          const code = (err as { code?: string }).code
          if (code === 'EOPENBREAKER') continue
          const timeout = (err as Error).name === 'TimeoutError' || code === 'UND_ERR_CONNECT_TIMEOUT'
          const kind = timeout ? 'timeout' : 'connect'
          fastify.gatewayMetrics.upstreamFailures.inc({ service: serviceName, instance: instance.url, kind })
          fastify.log.warn({ err, service: serviceName, instance: instance.url, requestId }, 'websocket upstream failed')
          if (attempt + 1 < service.instances.length) continue
          return timeout
            ? refuse(socket, 504, 'UPSTREAM_TIMEOUT', `The ${serviceName} service did not answer in time; retry later`, requestId)
            : refuse(socket, 502, 'UPSTREAM_ERROR', `The ${serviceName} service could not be reached; retry later`, requestId)
        }
        if (socket.destroyed) return upgraded.socket.destroy()
        if (degraded.length) joinUpstreamDegradation(upgraded.headers, degraded)
        socket.write(switchingProtocols(upgraded.headers, requestId))
        if (head.length) upgraded.socket.write(head)
        if ('setNoDelay' in socket) (socket as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true)
        if ('setTimeout' in socket) (socket as unknown as { setTimeout(ms: number): void }).setTimeout(0)
        return join(socket, upgraded.socket)
      }
      fastify.gatewayMetrics.degradations.inc({ mode: service.degradationMode })
      const seconds = Math.max(1, Math.ceil(service.retryAfterSeconds()))
      const message = `The ${serviceName} service is unavailable after repeated failures; retry after the time in Retry-After`
      return refuse(socket, 503, 'CIRCUIT_OPEN', message, requestId, {
        'retry-after': String(seconds),
        ...degradationHeaders([...degraded, service.degradationMode])
      })
    }

    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => {}) // a client that vanishes mid-handshake is not an error of ours
      handle(req, socket, head).catch((err: unknown) => {
        fastify.log.error({ err }, 'websocket upgrade failed')
        socket.destroy()
      })
    }
    fastify.server.on('upgrade', onUpgrade)

    fastify.addHook('preClose', (done) => {
      closing = true
      for (const s of joined) s.destroy()
      done()
    })
    fastify.addHook('onClose', (_instance, done) => {
      fastify.server.off('upgrade', onUpgrade)
      refusals.close(() => done())
    })
  },
  { name: 'websocket-proxy', dependencies: ['upstreams', 'rate-limiter', 'platform-auth', 'gateway-metrics'] }
)
