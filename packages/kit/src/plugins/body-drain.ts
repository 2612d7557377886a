import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { FastifyReply, FastifyRequest } from 'fastify'

export interface BodyDrainOptions {
  /** Bytes of the rest of a body read and thrown away after the answer, at most; 0 closes at once. */
  maxBytes: number
  /** Time the rest of a body is read for, at most. */
  timeoutMs: number
}

/** How a drain ended: the body was read to its end, a bound was hit, or the client closed first. */
export type DrainEnd = 'complete' | 'bytes' | 'time' | 'closed'

/** What the drain counts (http_body_drains_total, http_body_drained_bytes_total). */
export interface DrainMetrics {
  drains: Counter<'end'>
  drainedBytes: Counter
}

declare module 'fastify' {
  interface FastifyInstance {
    bodyDrain: BodyDrain
  }
}

/**
 * The least a service drains by default: twice the gateway's default REQUEST_SIZE_LIMIT (10 MiB). The
 * gateway streams a body on to a service before it has read the service's early answer, and may have that
 * much on its way; a service that closed before reading it would reset the connection under the gateway,
 * which would lose the answer and report the service as failed (502).
 */
export const MIN_SERVICE_DRAIN_BYTES = 2 * 10 * 1024 * 1024

/** REQUEST_DRAIN_BYTES [2 × the body limit, at least MIN_SERVICE_DRAIN_BYTES] and REQUEST_DRAIN_TIMEOUT_MS [5000]. */
export function drainOptions(
  config: { REQUEST_DRAIN_BYTES?: number | undefined; REQUEST_DRAIN_TIMEOUT_MS?: number | undefined },
  bodyLimit: number
): BodyDrainOptions {
  return {
    maxBytes: config.REQUEST_DRAIN_BYTES ?? Math.max(2 * bodyLimit, MIN_SERVICE_DRAIN_BYTES),
    timeoutMs: config.REQUEST_DRAIN_TIMEOUT_MS ?? 5000
  }
}

/** Node's http server ends a `connection: close` reply with this (net.Socket's, undocumented) when present. */
type LingeringSocket = Socket & { destroySoon?: () => void }

/** What net.Socket#destroySoon does: end the write side, destroy once it is flushed. */
function closeSoon(socket: Socket): void {
  if (socket.writable) socket.end()
  if (socket.writableFinished) socket.destroy()
  else socket.once('finish', () => socket.destroy())
}

/** The request announced a body (GET and HEAD bodies are never read, so never drained either). */
export function hasBody(request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false
  const { headers } = request
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

/** Node closes the connection after this reply: Connection: close was set, or the client asked for it (HTTP/1.0). */
function closesConnection(reply: FastifyReply): boolean {
  const connection = reply.getHeader('connection')
  return (typeof connection === 'string' && connection.toLowerCase() === 'close') || reply.raw.shouldKeepAlive === false
}

/**
 * A lingering close, as nginx does it, for answers given while the client is still sending its body (a
 * 413, an open breaker, an upstream that failed). Closing a connection while the client writes leaves its
 * bytes unread, and the kernel answers them with a reset: curl still shows the answer, but Node's fetch
 * (undici) reports "fetch failed" (ECONNRESET/EPIPE), Python's requests a broken connection, and the
 * gateway, streaming a body to a service, a failed upstream. So the answer goes out with `connection:
 * close`, only the write side is closed after it, and the rest of the body is read and thrown away until
 * it ends, `maxBytes` were read or `timeoutMs` passed; then the socket is closed. Nothing is kept.
 */
export class BodyDrain {
  private readonly draining = new WeakSet<Socket>()

  constructor(
    private readonly opts: BodyDrainOptions,
    private readonly metrics: DrainMetrics
  ) {}

  /** Call before the answer is sent: it marks the reply `connection: close` and drains what follows it. */
  start(request: FastifyRequest, reply: FastifyReply): void {
    reply.header('connection', 'close')
    const req = request.raw
    const socket = req.socket as LingeringSocket | null
    const { maxBytes, timeoutMs } = this.opts
    // Injected requests have no real socket; a body already read to its end leaves nothing to drain.
    if (maxBytes === 0 || !socket || typeof socket.destroy !== 'function' || socket.destroyed || req.complete) return
    if (this.draining.has(socket)) return
    this.draining.add(socket)
    const { drains, drainedBytes } = this.metrics
    let bytes = 0
    let ended: DrainEnd | null = null
    let answered = false

    const finish = (how: DrainEnd) => {
      if (ended) return
      ended = how
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      socket.off('close', onClose)
      drains.inc({ end: how })
      drainedBytes.inc(bytes)
      if (how === 'closed') return
      req.pause()
      // Before the answer is written, closing would lose it: Node calls destroySoon once it is out.
      if (answered) closeSoon(socket)
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > maxBytes) finish('bytes')
    }
    const onEnd = () => finish('complete')
    const onClose = () => finish('closed')
    const timer = setTimeout(finish, timeoutMs, 'time')
    timer.unref()

    // Node ends the reply with socket.destroySoon(): only the write side closes while the drain runs.
    socket.destroySoon = () => {
      answered = true
      if (ended) closeSoon(socket)
      else socket.end()
    }
    // Whoever read the body so far (a body parser over its limit, a stream to an upstream) has given up on it.
    req.removeAllListeners('data')
    req.on('data', onData)
    req.once('end', onEnd)
    socket.once('close', onClose)
    req.resume()
  }

  /** onSend: a reply that closes the connection while the body is still coming (Fastify's 413…) drains it. */
  readonly onSend = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
    if (!request.raw.complete && hasBody(request) && closesConnection(reply)) this.start(request, reply)
    done(null, payload)
  }
}

/**
 * Decorates `bodyDrain` and drains every reply that closes the connection before the body was read, as
 * Fastify's own 413 (over `bodyLimit`) and other body-parser errors do. Routes that answer early by
 * other means (the gateway's forwarder) call `bodyDrain.start` themselves.
 */
export const bodyDrainPlugin = fp<BodyDrainOptions>(
  async (fastify, opts) => {
    const registers = [fastify.metrics]
    const drain = new BodyDrain(opts, {
      drains: new Counter({
        name: 'http_body_drains_total',
        help: 'Bodies still coming when the answer closed the connection (413, an open breaker...), read and thrown away after it, by how that ended: complete, bytes, time, closed',
        labelNames: ['end'] as const,
        registers
      }),
      drainedBytes: new Counter({
        name: 'http_body_drained_bytes_total',
        help: 'Bytes of bodies read and thrown away after the answer',
        registers
      })
    })
    fastify.decorate('bodyDrain', drain)
    fastify.addHook('onSend', drain.onSend)
  },
  { name: 'platform-body-drain', fastify: '5.x', dependencies: ['platform-metrics'] }
)
