import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { chatLiveSubject, type ChatLiveEnvelope } from '@platform/contracts'
import type { NatsHandle } from '@platform/kit'

declare module 'fastify' {
  interface FastifyInstance {
    liveBus: LiveBus
  }
}

type Receiver = (chatSessionId: string, data: Uint8Array) => void

/**
 * Live fan-out between chat instances on core NATS `chat.live.<chatSessionId>` (namespaced). An
 * instance subscribes to the sessions it has connections in. Nothing here is durable: Postgres is
 * the source of truth, and `onResync` tells the hub to read back what it may have missed while NATS
 * was away.
 */
export class LiveBus {
  /** Identifies this instance's publications, so it can ignore its own echoes. */
  readonly instanceId = randomUUID()
  /** How this instance's envelopes start (`origin` is serialized first): echoes are dropped unparsed. */
  private readonly ownPrefix = Buffer.from(`{"origin":"${this.instanceId}"`)
  private readonly subs = new Map<string, Subscription | null>()
  private receiver: Receiver = () => {}
  private resync: () => void = () => {}

  constructor(
    private readonly nats: NatsHandle,
    private readonly flushTimeoutMs = 1000
  ) {
    nats.onConnect((nc) => this.connected(nc))
  }

  get up(): boolean {
    return this.nats.connected
  }

  onFrame(fn: Receiver): void {
    this.receiver = fn
  }

  onResync(fn: () => void): void {
    this.resync = fn
  }

  /** Subscribes to a session; resolves once NATS has the subscription (or at once while NATS is down). */
  async join(chatSessionId: string): Promise<void> {
    if (this.subs.has(chatSessionId)) return
    // While reconnecting nats.js queues the subscription; before the first connect there is no connection yet.
    const nc = this.nats.connection
    this.subs.set(chatSessionId, nc && !nc.isClosed() ? this.subscribe(nc, chatSessionId) : null)
    if (nc && this.nats.connected) await this.flush(nc)
  }

  leave(chatSessionId: string): void {
    const sub = this.subs.get(chatSessionId)
    this.subs.delete(chatSessionId)
    try {
      sub?.unsubscribe()
    } catch {
      // the connection is gone; nothing to undo
    }
  }

  /** Best effort: false when NATS is down (other instances catch up from Postgres). */
  publish(chatSessionId: string, frame: ChatLiveEnvelope['frame'], connectionId?: string): boolean {
    const nc = this.nats.connection
    if (!nc || !this.nats.connected) return false
    const envelope: ChatLiveEnvelope = { origin: this.instanceId, ...(connectionId ? { connectionId } : {}), frame }
    try {
      nc.publish(this.nats.subject(chatLiveSubject(chatSessionId)), JSON.stringify(envelope))
      return true
    } catch {
      return false
    }
  }

  close(): void {
    for (const id of [...this.subs.keys()]) this.leave(id)
  }

  private subscribe(nc: NatsConnection, chatSessionId: string): Subscription {
    return nc.subscribe(this.nats.subject(chatLiveSubject(chatSessionId)), {
      callback: (err, msg) => {
        if (err || this.isEcho(msg.data)) return
        this.receiver(chatSessionId, msg.data)
      }
    })
  }

  private isEcho(data: Uint8Array): boolean {
    const p = this.ownPrefix
    if (data.length < p.length) return false
    for (let i = p.length - 1; i >= 0; i--) if (data[i] !== p[i]) return false
    return true
  }

  private async flush(nc: NatsConnection): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      nc.flush().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.flushTimeoutMs)
      })
    ])
    clearTimeout(timer)
  }

  /** First connect (subscribe what joined meanwhile) and every reconnect (nats.js resubscribes itself). */
  private connected(nc: NatsConnection): void {
    for (const [id, sub] of this.subs) if (!sub) this.subs.set(id, this.subscribe(nc, id))
    this.resync()
  }
}

export const liveBusPlugin = fp(
  async (fastify) => {
    fastify.decorate('liveBus', new LiveBus(fastify.nats))
  },
  { name: 'chat-live-bus', dependencies: ['platform-nats'] }
)
