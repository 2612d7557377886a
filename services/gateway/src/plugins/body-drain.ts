import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayMetrics } from './gateway-metrics.js'

export interface BodyDrainOptions {
  /** Bytes of the rest of a body read and thrown away after the answer, at most. */
  maxBytes: number
  /** Time the rest of a body is read for, at most. */
  timeoutMs: number
}

/** How a drain ended: the body was read to its end, a bound was hit, or the client closed first. */
export type DrainEnd = 'complete' | 'bytes' | 'time' | 'closed'

declare module 'fastify' {
  interface FastifyInstance {
    bodyDrain: BodyDrain
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

/**
 * A lingering close, as nginx does it, for answers given while the client is still sending its body (a
 * 413, an open breaker, a failed upstream). Closing a connection while the client writes leaves its bytes
 * unread, and the kernel answers them with a reset: curl still shows the answer, Node's fetch (undici)
 * reports "fetch failed" (ECONNRESET/EPIPE) instead. So the answer goes out with `connection: close`, only
 * the write side is closed after it, and the rest of the body is read and thrown away until it ends,
 * `maxBytes` were read or `timeoutMs` passed; then the socket is closed. Nothing is kept: memory does not
 * grow with the body.
 */
export class BodyDrain {
  private readonly draining = new WeakSet<Socket>()

  constructor(
    private readonly opts: BodyDrainOptions,
    private readonly metrics: GatewayMetrics
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
    // Whoever read the body so far (the forwarder's stream to an upstream) has given up on it.
    req.removeAllListeners('data')
    req.on('data', onData)
    req.once('end', onEnd)
    socket.once('close', onClose)
    req.resume()
  }
}

export const bodyDrainPlugin = fp<BodyDrainOptions>(
  async (fastify, opts) => {
    fastify.decorate('bodyDrain', new BodyDrain(opts, fastify.gatewayMetrics))
  },
  { name: 'body-drain', dependencies: ['gateway-metrics'] }
)
