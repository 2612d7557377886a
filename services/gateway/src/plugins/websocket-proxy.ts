import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import { WebSocketProxy, type WebSocketProxyOptions } from '../websocket/proxy.js'

export type { WebSocketProxyOptions } from '../websocket/proxy.js'

/** The WebSocket proxy (websocket/proxy.ts) on the server's upgrades, its sockets closed with the gateway. */
export const webSocketProxyPlugin = fp<WebSocketProxyOptions>(
  async (fastify, opts) => {
    const proxy = new WebSocketProxy({
      verify: fastify.verifyTokenAsync,
      rateLimiter: fastify.rateLimiter,
      upstreams: fastify.upstreams,
      metrics: fastify.gatewayMetrics,
      log: fastify.log,
      opts
    })
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // A client that vanishes mid-handshake is not an error of ours: its socket's errors are dropped.
      socket.on('error', () => {})
      proxy.handle(req, socket, head).catch((err: unknown) => {
        fastify.log.error({ err }, 'websocket upgrade failed')
        socket.destroy()
      })
    }
    fastify.server.on('upgrade', onUpgrade)
    fastify.addHook('preClose', (done) => {
      proxy.closeAll()
      done()
    })
    fastify.addHook('onClose', async () => {
      fastify.server.off('upgrade', onUpgrade)
      await proxy.close()
    })
  },
  { name: 'websocket-proxy', dependencies: ['upstreams', 'rate-limiter', 'platform-auth', 'gateway-metrics'] }
)
