import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { chatLiveSubject, type ChatLiveEnvelope } from '@platform/contracts'
import type { NatsHandle } from '@platform/kit'
import { SeqRanges, type SeqRange } from '../domain/seq-ranges.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveBus: LiveBus
  }
}

type Receiver = (chatSessionId: string, data: Uint8Array) => void
/** Per session, the messages this instance persisted that NATS may not have carried: to publish again. */
export type Resync = (republish: Map<string, SeqRange>) => void

/**
 * Live fan-out between chat instances on core NATS `chat.live.<chatSessionId>` (namespaced). An
 * instance subscribes to the sessions it has connections in. Nothing here is durable: Postgres is
 * the source of truth. After every (re)connect, once the server has this instance's subscriptions,
 * `onResync` tells the hub to read back what its rooms may have missed and to publish again what this
 * instance persisted but NATS may not have carried: publications while NATS was down, and those not
 * yet confirmed by a flush when the connection died (core NATS drops them silently, e.g. on a
 * connection that died unnoticed until its pings timed out).
 */
export class LiveBus {
  /** Identifies this instance's publications, so it can ignore its own echoes. */
  readonly instanceId = randomUUID()
  /** How this instance's envelopes start (`origin` is serialized first): echoes are dropped unparsed. */
  private readonly ownPrefix = Buffer.from(`{"origin":"${this.instanceId}"`)
  private readonly subs = new Map<string, Subscription | null>()
  private receiver: Receiver = () => {}
  private resync: Resync = () => {}
  /** Message seqs not published (NATS down). */
  private readonly unsent = new SeqRanges()
  /** Message seqs published since the last flush started. */
  private unconfirmed = new SeqRanges()
  /** Those whose flush (PING/PONG) is under way: the server has them once it resolves. */
  private confirming: SeqRanges | null = null
  private confirmTimer: NodeJS.Timeout | null = null

  constructor(
    private readonly nats: NatsHandle,
    private readonly flushTimeoutMs = 1000,
    private readonly confirmDelayMs = 100
  ) {
    nats.onConnect((nc) => this.connected(nc))
  }

  get up(): boolean {
    return this.nats.connected
  }

  onFrame(fn: Receiver): void {
    this.receiver = fn
  }

  onResync(fn: Resync): void {
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

  /**
   * Best effort: false when NATS is down. A message is remembered until a flush confirms the server
   * has it, and published again (from Postgres) after the next reconnect otherwise.
   */
  publish(chatSessionId: string, frame: ChatLiveEnvelope['frame'], connectionId?: string): boolean {
    const seq = frame.type === 'message' ? frame.seq : 0
    const nc = this.nats.connection
    if (nc && this.nats.connected) {
      const envelope: ChatLiveEnvelope = { origin: this.instanceId, ...(connectionId ? { connectionId } : {}), frame }
      try {
        nc.publish(this.nats.subject(chatLiveSubject(chatSessionId)), JSON.stringify(envelope))
        if (seq) {
          this.unconfirmed.add(chatSessionId, seq)
          this.scheduleConfirm()
        }
        return true
      } catch {
        // closed meanwhile: as if down
      }
    }
    if (seq) this.unsent.add(chatSessionId, seq)
    return false
  }

  /** Puts back messages to publish again that could not be read (they go with the next resync). */
  requeue(chatSessionId: string, range: SeqRange): void {
    this.unsent.addRange(chatSessionId, range)
  }

  /** The messages waiting to be published again, taken. */
  takeUnsent(): Map<string, SeqRange> {
    return this.unsent.take()
  }

  close(): void {
    if (this.confirmTimer) clearTimeout(this.confirmTimer)
    this.confirmTimer = null
    for (const id of [...this.subs.keys()]) this.leave(id)
  }

  /** One flush at a time for everything published meanwhile, at most every `confirmDelayMs`. */
  private scheduleConfirm(): void {
    if (this.confirmTimer || this.confirming) return
    this.confirmTimer = setTimeout(this.confirm, this.confirmDelayMs)
    this.confirmTimer.unref()
  }

  private readonly confirm = (): void => {
    this.confirmTimer = null
    const nc = this.nats.connection
    if (!nc || this.unconfirmed.size === 0) return
    const batch = this.unconfirmed
    this.unconfirmed = new SeqRanges()
    this.confirming = batch
    // nats.js rejects a pending flush when its connection goes (and drops what it had not written).
    Promise.resolve()
      .then(() => nc.flush())
      .then(
        () => {},
        () => {
          if (this.confirming === batch) this.unsent.merge(batch)
        }
      )
      .finally(() => {
        if (this.confirming === batch) this.confirming = null
        if (this.unconfirmed.size > 0) this.scheduleConfirm()
      })
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
      // A failed flush means the connection went: the next connect flushes and resyncs itself.
      nc.flush().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.flushTimeoutMs)
      })
    ])
    clearTimeout(timer)
  }

  /** First connect (subscribe what joined meanwhile) and every reconnect (nats.js resubscribes itself). */
  private async connected(nc: NatsConnection): Promise<void> {
    for (const [id, sub] of this.subs) if (!sub) this.subs.set(id, this.subscribe(nc, id))
    // Read back only once the server has every subscription: a message published between the read
    // and the subscription would be missed until a later one revealed the gap.
    await this.flush(nc)
    const republish = this.unsent
    republish.merge(this.unconfirmed)
    this.unconfirmed = new SeqRanges()
    if (this.confirming) republish.merge(this.confirming)
    this.confirming = null
    this.resync(republish.take())
  }
}

export const liveBusPlugin = fp(
  async (fastify) => {
    fastify.decorate('liveBus', new LiveBus(fastify.nats))
  },
  { name: 'chat-live-bus', dependencies: ['platform-nats'] }
)
