import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { Dispatcher } from 'undici'
import { requestId as requestIdOf, type Principal } from '@platform/kit'
import { degradationHeaders, type DegradationMode } from '@platform/contracts'
import { WebSocketRoutes, type ServiceName } from '../domain/route-table.js'
import { clientAddress, compileAddressList } from '../domain/addresses.js'
import { upstreamHeaders } from '../domain/headers.js'
import { rateLimitFor, Reads } from '../domain/rate-limits.js'
import type { UpstreamInstance } from '../upstreams/instance.js'
import type { Upstreams } from '../upstreams/service.js'
import type { RateLimiter } from '../plugins/rate-limiter.js'
import type { GatewayMetrics } from '../plugins/gateway-metrics.js'
import { UNAUTHORIZED, joinUpstreamDegradation, offeredProtocols, refusalProtocol, refuse, switchingProtocols, tokenOf } from './handshake.js'
import { codeOf } from '../domain/error-code.js'

export interface WebSocketProxyOptions {
  trustedProxies: string
  rateLimit: { enabled: boolean; windowMs: number; anonymous: number; authenticated: number }
  /** Time for the upstream to complete its side of the handshake. */
  timeoutMs: number
  /** Longest request target (MAX_URL_LENGTH): 414 beyond. */
  maxUrlLength: number
}

export interface WebSocketProxyDeps {
  verify: (token: string) => Promise<Principal>
  rateLimiter: RateLimiter
  upstreams: Upstreams
  metrics: GatewayMetrics
  log: { warn(obj: object, msg: string): void }
  opts: WebSocketProxyOptions
}

/** One upgrade on its way through: what the steps after the first need of it. */
interface Upgrade {
  req: IncomingMessage
  socket: Duplex
  head: Buffer
  requestId: string
  service: ServiceName
}

/**
 * WebSocket upgrades (/ws/chat): the token is checked at the upgrade (a bad one completes the handshake
 * and closes with 4401 so the client learns why), the request is counted by the rate limiter, then the
 * upstream's handshake is relayed and the two TCP streams are joined: every frame, subprotocol,
 * extension and close code passes unchanged, and when either side closes the other is closed.
 */
export class WebSocketProxy {
  private readonly trust: ReturnType<typeof compileAddressList>
  private readonly joined = new Set<Duplex>()
  private closing = false
  // Only for refusals: completes a handshake so the client can read the 4401.
  private readonly refusals = new WebSocketServer({ noServer: true, handleProtocols: refusalProtocol })

  constructor(private readonly deps: WebSocketProxyDeps) {
    this.trust = compileAddressList(deps.opts.trustedProxies)
  }

  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const requestId = requestIdOf(req.headers['x-request-id'])
    const service = WebSocketRoutes[path]
    if (this.closing) return refuse(socket, 503, 'SERVICE_UNAVAILABLE', 'The gateway is shutting down; reconnect', requestId)
    if (!service) return refuse(socket, 404, 'NOT_FOUND', `No WebSocket route ${path}`, requestId)
    const max = this.deps.opts.maxUrlLength
    if (url.length > max)
      return refuse(socket, 414, 'URI_TOO_LONG', `The path and query are longer than the ${max} characters the gateway accepts`, requestId)

    const upgrade: Upgrade = { req, socket, head, requestId, service }
    const identity = await this.identify(upgrade, url)
    if (identity === false) return
    const clientIp = clientAddress(req, this.trust)
    const degraded = await this.limit(upgrade, identity, clientIp)
    if (degraded === null) return
    return this.connect(upgrade, clientIp, degraded)
  }

  /** Ends every joined connection and refuses new upgrades (the gateway is shutting down). */
  closeAll(): void {
    this.closing = true
    for (const s of this.joined) s.destroy()
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.refusals.close(() => resolve()))
  }

  /** The verified principal, null without a token, false when the token was refused (and the socket closed with 4401). */
  private async identify({ req, socket, head }: Upgrade, url: string): Promise<Principal | null | false> {
    const token = tokenOf(url, offeredProtocols(req.headers['sec-websocket-protocol']))
    if (token === undefined) return null
    try {
      return await this.deps.verify(token)
    } catch (err) {
      const code = codeOf(err) || 'TOKEN_INVALID'
      this.refusals.handleUpgrade(req, socket, head, (ws) => ws.close(UNAUTHORIZED, code))
      return false
    }
  }

  /** Counts the upgrade as a read; the degradation modes of the count, or null when it was refused with 429. */
  private async limit(upgrade: Upgrade, identity: Principal | null, clientIp: string): Promise<DegradationMode[] | null> {
    const { rateLimit } = this.deps.opts
    const degraded: DegradationMode[] = []
    if (!rateLimit.enabled) return degraded
    const limit = rateLimitFor(upgrade.service, Reads, rateLimit)
    const max = identity ? limit.authenticated : limit.anonymous
    const key = `${limit.bucket}:${identity ? `u:${identity.sub}` : `ip:${clientIp}`}`
    const hit = await this.deps.rateLimiter.count(key, rateLimit.windowMs, max)
    if (hit.local) degraded.push('rate_limit_local')
    if (hit.current <= max) return degraded
    const seconds = Math.max(1, Math.ceil(hit.ttl / 1000))
    this.deps.metrics.rateLimitRejections.inc({ identity: identity ? 'authenticated' : 'anonymous', store: hit.local ? 'local' : 'shared' })
    refuse(upgrade.socket, 429, 'RATE_LIMITED', `Too many requests: retry after ${seconds} seconds (Retry-After)`, upgrade.requestId, {
      'retry-after': String(seconds),
      'ratelimit-limit': String(max),
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(seconds),
      ...degradationHeaders(degraded)
    })
    return null
  }

  /** Each instance once, round robin over closed breakers, until one completes the handshake; then the two sockets are joined. */
  private async connect(upgrade: Upgrade, clientIp: string, degraded: DegradationMode[]): Promise<void> {
    const { req, socket, head, requestId } = upgrade
    const service = this.deps.upstreams.get(upgrade.service)
    const headers = upstreamHeaders(req.headers, { requestId, clientIp, host: req.headers.host, proto: 'http' })
    for (let attempt = 0; attempt < service.instances.length; attempt++) {
      const instance = service.pick()
      if (!instance) break
      const upgraded = await this.upgradeOn(instance, upgrade, headers, attempt + 1 === service.instances.length)
      if (upgraded === 'next') continue
      if (upgraded === 'refused') return
      if (socket.destroyed) return void upgraded.socket.destroy()
      if (degraded.length) joinUpstreamDegradation(upgraded.headers, degraded)
      socket.write(switchingProtocols(upgraded.headers, requestId))
      if (head.length) upgraded.socket.write(head)
      if (socket instanceof Socket) {
        socket.setNoDelay(true)
        socket.setTimeout(0)
      }
      return this.join(socket, upgraded.socket)
    }
    this.deps.metrics.degradations.inc({ mode: service.degradationMode })
    const seconds = Math.max(1, Math.ceil(service.retryAfterSeconds()))
    const message = `The ${upgrade.service} service is unavailable after repeated failures; retry after the time in Retry-After`
    refuse(socket, 503, 'CIRCUIT_OPEN', message, requestId, {
      'retry-after': String(seconds),
      ...degradationHeaders([...degraded, service.degradationMode])
    })
  }

  /** The upstream's handshake on one instance; 'next' to try another, 'refused' when the last one failed and the client was answered. */
  private async upgradeOn(
    instance: UpstreamInstance,
    { req, socket, requestId, service }: Upgrade,
    headers: string[],
    last: boolean
  ): Promise<Dispatcher.UpgradeData | 'next' | 'refused'> {
    const signal = AbortSignal.timeout(this.deps.opts.timeoutMs)
    try {
      return await instance.breaker.run(() => instance.pool.upgrade({ path: req.url ?? '/', method: 'GET', headers, protocol: 'websocket', signal }))
    } catch (err) {
      if (codeOf(err) === 'EOPENBREAKER') return 'next'
      const timeout = (err instanceof Error && err.name === 'TimeoutError') || codeOf(err) === 'UND_ERR_CONNECT_TIMEOUT'
      const kind = timeout ? 'timeout' : 'connect'
      this.deps.metrics.upstreamFailures.inc({ service, instance: instance.url, kind })
      this.deps.log.warn({ err, service, instance: instance.url, requestId }, 'websocket upstream failed')
      if (!last) return 'next'
      if (timeout) refuse(socket, 504, 'UPSTREAM_TIMEOUT', `The ${service} service did not answer in time; retry later`, requestId)
      else refuse(socket, 502, 'UPSTREAM_ERROR', `The ${service} service could not be reached; retry later`, requestId)
      return 'refused'
    }
  }

  private join(client: Duplex, upstream: Duplex): void {
    this.joined.add(client)
    // One side closed: the other is ended (what was already relayed, a close frame included, is
    // flushed first) and destroyed if it does not finish on its own.
    const closeOther = (other: Duplex) => () => {
      this.joined.delete(client)
      if (other.destroyed) return
      other.end()
      setTimeout(() => other.destroy(), 2000).unref()
    }
    client.on('close', closeOther(upstream)).on('error', () => upstream.destroy())
    upstream.on('close', closeOther(client)).on('error', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  }
}
