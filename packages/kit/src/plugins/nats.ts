import fp from 'fastify-plugin'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { ensureStream, streamNameFor } from '../events/streams.js'
import { waitUntil } from '../wait.js'
import type { StreamKey } from '@platform/contracts'

export interface NatsOptions {
  url: string
  namespace: string
  name: string
  /** Streams this service publishes into, created when missing on every (re)connect. */
  streams: StreamKey[]
}

/** A NATS connection that may not exist yet: HTTP must work while NATS is down (docs/architecture.md). */
export interface NatsHandle {
  readonly connection: NatsConnection | null
  readonly connected: boolean
  /** `sessions.named.created` → the namespaced subject actually used on the wire. */
  subject(type: string): string
  streamName(key: StreamKey): string
  js(): JetStreamClient
  jsm(): Promise<JetStreamManager>
  /** Runs after the first connect and after every reconnect. */
  onConnect(fn: (nc: NatsConnection) => void | Promise<void>): void
}

declare module 'fastify' {
  interface FastifyInstance {
    nats: NatsHandle
  }
}

export function namespaced(namespace: string, subject: string): string {
  return namespace ? `${namespace}.${subject}` : subject
}

export const natsPlugin = fp<NatsOptions>(
  async (fastify, opts) => {
    let nc: NatsConnection | null = null
    let connected = false
    let closing = false
    let retry: NodeJS.Timeout | undefined
    const listeners: Array<(nc: NatsConnection) => void | Promise<void>> = []

    const announce = async (conn: NatsConnection) => {
      try {
        const jsm = await jetstreamManager(conn)
        for (const key of opts.streams) await ensureStream(jsm, opts.namespace, key)
      } catch (err) {
        fastify.log.warn({ err }, 'could not ensure JetStream streams')
      }
      for (const fn of listeners) {
        try {
          await fn(conn)
        } catch (err) {
          fastify.log.error({ err }, 'nats onConnect listener failed')
        }
      }
    }

    const watch = async (conn: NatsConnection) => {
      for await (const s of conn.status()) {
        if (s.type === 'disconnect') {
          connected = false
          fastify.log.warn('nats disconnected')
        } else if (s.type === 'reconnect') {
          connected = true
          fastify.log.info('nats reconnected')
          void announce(conn)
        }
      }
    }

    const attempt = async () => {
      if (closing) return
      try {
        const conn = await connect({
          servers: opts.url.split(','),
          name: opts.name,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          timeout: 2000,
          pingInterval: 5000,
          maxPingOut: 2
        })
        if (closing) return void (await conn.close())
        nc = conn
        connected = true
        fastify.log.info({ server: conn.getServer() }, 'nats connected')
        void watch(conn)
        await announce(conn)
      } catch (err) {
        fastify.log.warn({ err }, 'nats unavailable, retrying')
        retry = setTimeout(attempt, 1000)
      }
    }
    // A service starts and serves HTTP while NATS is still unreachable: wait briefly, never fail.
    await waitUntil(attempt(), 2500)

    const handle: NatsHandle = {
      get connection() {
        return nc
      },
      get connected() {
        return connected && nc !== null && !nc.isClosed()
      },
      subject: (type) => namespaced(opts.namespace, type),
      streamName: (key) => streamNameFor(opts.namespace, key),
      js: () => {
        if (!nc) throw new Error('NATS is not connected')
        return jetstream(nc, { timeout: 5000 })
      },
      jsm: async () => {
        if (!nc) throw new Error('NATS is not connected')
        return jetstreamManager(nc)
      },
      onConnect: (fn) => {
        listeners.push(fn)
        if (nc && connected) void Promise.resolve(fn(nc)).catch((err) => fastify.log.error({ err }, 'nats onConnect listener failed'))
      }
    }
    fastify.decorate('nats', handle)
    fastify.readiness.add('nats', { required: false, check: () => (handle.connected ? 'up' : 'down') })

    fastify.addHook('onClose', async () => {
      closing = true
      clearTimeout(retry)
      if (nc && !nc.isClosed()) {
        await nc.drain().catch(() => nc?.close())
      }
    })
  },
  { name: 'platform-nats', fastify: '5.x', dependencies: ['platform-health'] }
)
