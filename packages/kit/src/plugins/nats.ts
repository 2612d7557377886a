import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
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

export type NatsLog = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>

/** A client that connects (and keeps reconnecting) on its own, without Fastify. */
export interface NatsClient extends NatsHandle {
  /**
   * The first connection attempt: resolves once it connected and ran the `onConnect` listeners, or
   * once it failed (it then retries every second until `close()`).
   */
  connect(): Promise<void>
  /** Stops retrying and drains the connection. */
  close(): Promise<void>
}

/** A class: connection state shared by the handle's getters and the connect, watch and announce steps. */
class ReconnectingNatsClient implements NatsClient {
  private nc: NatsConnection | null = null
  private isConnected = false
  private closing = false
  private retry: NodeJS.Timeout | undefined
  private readonly listeners: Array<(nc: NatsConnection) => void | Promise<void>> = []

  constructor(
    private readonly opts: NatsOptions,
    private readonly log: NatsLog
  ) {}

  get connection(): NatsConnection | null {
    return this.nc
  }

  get connected(): boolean {
    return this.isConnected && this.nc !== null && !this.nc.isClosed()
  }

  subject(type: string): string {
    return namespaced(this.opts.namespace, type)
  }

  streamName(key: StreamKey): string {
    return streamNameFor(this.opts.namespace, key)
  }

  js(): JetStreamClient {
    if (!this.nc) throw new Error('NATS is not connected')
    return jetstream(this.nc, { timeout: 5000 })
  }

  async jsm(): Promise<JetStreamManager> {
    if (!this.nc) throw new Error('NATS is not connected')
    return jetstreamManager(this.nc)
  }

  onConnect(fn: (nc: NatsConnection) => void | Promise<void>): void {
    this.listeners.push(fn)
    const nc = this.nc
    // Called now, like `announce` does on a connect; a listener that throws (even synchronously) is logged.
    if (nc && this.isConnected) void (async () => fn(nc))().catch((err) => this.log.error({ err }, 'nats onConnect listener failed'))
  }

  async connect(): Promise<void> {
    if (this.closing) return
    try {
      const conn = await connect({
        servers: this.opts.url.split(','),
        name: this.opts.name,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 2000,
        pingInterval: 5000,
        maxPingOut: 2
      })
      if (this.closing) return void (await conn.close())
      this.nc = conn
      this.isConnected = true
      this.log.info({ server: conn.getServer() }, 'nats connected')
      void this.watch(conn)
      await this.announce(conn)
    } catch (err) {
      this.log.warn({ err }, 'nats unavailable, retrying')
      this.retry = setTimeout(() => void this.connect(), 1000)
    }
  }

  async close(): Promise<void> {
    this.closing = true
    clearTimeout(this.retry)
    const nc = this.nc
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close())
  }

  /** Ensures the streams this service publishes into, then tells every listener. */
  private async announce(conn: NatsConnection): Promise<void> {
    try {
      const jsm = await jetstreamManager(conn)
      for (const key of this.opts.streams) await ensureStream(jsm, this.opts.namespace, key)
    } catch (err) {
      this.log.warn({ err }, 'could not ensure JetStream streams')
    }
    for (const fn of this.listeners) {
      try {
        await fn(conn)
      } catch (err) {
        this.log.error({ err }, 'nats onConnect listener failed')
      }
    }
  }

  private async watch(conn: NatsConnection): Promise<void> {
    for await (const s of conn.status()) {
      if (s.type === 'disconnect') {
        this.isConnected = false
        this.log.warn('nats disconnected')
      } else if (s.type === 'reconnect') {
        this.isConnected = true
        this.log.info('nats reconnected')
        void this.announce(conn)
      }
    }
  }
}

export function createNatsClient(opts: NatsOptions, log: NatsLog): NatsClient {
  return new ReconnectingNatsClient(opts, log)
}

/** Decorates `fastify.nats`, reports it in /ready and drains it on close. */
export const natsPlugin = fp<NatsOptions>(
  async (fastify, opts) => {
    const client = createNatsClient(opts, fastify.log)
    // A service starts and serves HTTP while NATS is still unreachable: wait briefly, never fail.
    await waitUntil(client.connect(), 2500)
    fastify.decorate('nats', client)
    fastify.readiness.add('nats', { required: false, check: () => (client.connected ? 'up' : 'down') })
    fastify.addHook('onClose', () => client.close())
  },
  { name: 'platform-nats', fastify: '5.x', dependencies: ['platform-health'] }
)
