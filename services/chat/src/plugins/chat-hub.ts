import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { ChatHub, type HubOptions } from '../hub/chat-hub.js'

declare module 'fastify' {
  interface FastifyInstance {
    chatHub: ChatHub
  }
}

/** The hub of this instance's WebSocket connections (src/hub), with its metrics. */
export const chatHubPlugin = fp<HubOptions>(
  async (fastify, opts) => {
    const registers = [fastify.metrics]
    const metrics = {
      slowConsumers: new Counter({
        name: 'chat_slow_consumer_closes_total',
        help: 'Connections closed with 4008 because their unsent buffer passed the limit',
        registers
      }),
      gapFills: new Counter({ name: 'chat_gap_fills_total', help: 'Times a room read missing messages back from Postgres', registers })
    }
    const hub = new ChatHub({ store: fastify.chatStore, bus: fastify.liveBus, log: fastify.log, metrics }, opts)
    new Gauge({
      name: 'chat_connections',
      help: 'Open chat WebSocket connections on this instance',
      registers,
      collect() {
        this.set(hub.connections.size)
      }
    })
    new Gauge({
      name: 'chat_rooms',
      help: 'Chat sessions with connections on this instance',
      registers,
      collect() {
        this.set(hub.rooms.size)
      }
    })
    fastify.decorate('chatHub', hub)
  },
  { name: 'chat-hub', dependencies: ['chat-store', 'chat-live-bus', 'platform-metrics'] }
)
