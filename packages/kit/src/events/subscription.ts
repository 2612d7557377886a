import {
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg
} from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { StreamKey } from '@platform/contracts'
import type { NatsHandle } from '../plugins/nats.js'
import { ensureStream } from './streams.js'
import type { ConsumerLog } from './outage.js'

export type DurableConfig = Partial<ConsumerConfig> & { durable_name: string }

async function upsertConsumer(jsm: JetStreamManager, stream: string, config: DurableConfig) {
  try {
    await jsm.consumers.add(stream, config)
  } catch {
    // It exists with another configuration (e.g. a changed ack wait): update what may change.
    const { ack_wait, max_ack_pending, max_deliver } = config
    await jsm.consumers.update(stream, config.durable_name, { ack_wait, max_ack_pending, max_deliver })
  }
}

export interface SubscriptionDeps {
  nats: NatsHandle
  namespace: string
  stream: StreamKey
  config: DurableConfig
  /** Messages the client pulls at a time. */
  batchSize: number
  log: ConsumerLog
  deliver(m: JsMsg): void
  /** NATS came back: hand back what is held; `info` is the durable as the server knew it, when it did. */
  handBack(info: ConsumerInfo | null): void
  /** The subscription changed: the loop may work again. */
  wake(): void
}

/** The durable pull subscription, (re)created on every (re)connect and after it is lost. */
export interface Subscription {
  readonly subscribed: boolean
  /** NATS came back and what the consumer holds has not been handed back yet. */
  readonly reconnectPending: boolean
  /** Subscribes now if NATS is connected, and again after every reconnect. */
  start(): void
  stop(): void
}

/** A class: its state is shared by a dozen small steps, each a method. */
class DurableSubscription implements Subscription {
  private readonly streamName: string
  private closing = false
  private generation = 0
  private messages: ConsumerMessages | null = null
  private retries = 0
  private retryTimer: NodeJS.Timeout | undefined
  private connectedOnce = false
  subscribed = false
  reconnectPending = false

  constructor(private readonly deps: SubscriptionDeps) {
    this.streamName = deps.nats.streamName(deps.stream)
  }

  start(): void {
    this.deps.nats.onConnect((nc) => {
      if (this.connectedOnce) this.reconnectPending = true
      this.connectedOnce = true
      return this.subscribe(nc)
    })
  }

  stop(): void {
    this.closing = true
    clearTimeout(this.retryTimer)
    this.messages?.stop()
    this.messages = null
    this.subscribed = false
  }

  private retry(): void {
    clearTimeout(this.retryTimer)
    if (this.closing) return
    this.retries++
    this.retryTimer = setTimeout(
      () => {
        const nc = this.deps.nats.connection
        if (nc && this.deps.nats.connected) void this.subscribe(nc)
        else this.retry()
      },
      Math.min(250 * 2 ** Math.min(this.retries, 5), 5000)
    )
  }

  /** (Re)creates the streams, the durable consumer and the pull subscription on this connection. */
  private async subscribe(nc: NatsConnection): Promise<void> {
    if (this.closing) return
    const gen = ++this.generation
    clearTimeout(this.retryTimer)
    try {
      const existing = await this.ensureDurable(nc)
      // The durable survived: the client's subscription pulls again by itself after a reconnect, and
      // replacing it would lose what the server sends to the old one meanwhile (pending until the ack wait).
      if (existing && this.messages && this.subscribed && gen === this.generation) {
        this.retries = 0
        return this.deps.wake()
      }
      await this.attach(nc, gen)
    } catch (err) {
      if (gen !== this.generation) return
      this.subscribed = false
      this.deps.log.warn({ err }, 'could not subscribe the event consumer; retrying')
      this.retry()
    }
  }

  /**
   * Creates the streams and the durable. After a reconnect (e.g. a NATS restart) it hands back what is
   * held here, so the server redelivers it at once; acks lost with the old connection leave the rest
   * pending on the server until the ack wait ends.
   */
  private async ensureDurable(nc: NatsConnection): Promise<ConsumerInfo | null> {
    const { namespace, stream, config } = this.deps
    const jsm = await jetstreamManager(nc)
    await ensureStream(jsm, namespace, stream)
    await ensureStream(jsm, namespace, 'deadLetter')
    const reconnected = this.reconnectPending
    // No consumer info (a restarted server lost it) means nothing is pending to report: upsert creates it again.
    const existing = reconnected ? await jsm.consumers.info(this.streamName, config.durable_name).catch(() => null) : null
    await upsertConsumer(jsm, this.streamName, config)
    if (reconnected && this.reconnectPending) {
      this.reconnectPending = false
      this.deps.handBack(existing)
    }
    return existing
  }

  private async attach(nc: NatsConnection, gen: number): Promise<void> {
    const consumer = await jetstream(nc).consumers.get(this.streamName, this.deps.config.durable_name)
    const next = await consumer.consume({ max_messages: this.deps.batchSize, callback: (m) => this.deps.deliver(m) })
    if (gen !== this.generation || this.closing) return next.stop()
    // Messages the previous subscription delivered stay with the loop and are handled as usual.
    const previous = this.messages
    this.messages = next
    this.subscribed = true
    this.retries = 0
    previous?.stop()
    this.deps.wake()
    this.deps.log.info({ stream: this.streamName }, 'event consumer subscribed')
    this.watch(next)
  }

  /** A durable deleted under us (or a stream recreated empty) is not recreated by the client: do it here. */
  private watch(next: ConsumerMessages): void {
    const { log } = this.deps
    void next.closed().then((err) => {
      if (this.messages !== next || this.closing) return
      this.subscribed = false
      log.warn({ err }, 'event subscription ended; subscribing again')
      this.retry()
    })
    void (async () => {
      for await (const s of next.status()) {
        if (this.messages !== next || this.closing) return
        if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
          log.warn({ notification: s.type }, 'event consumer lost; creating it again')
          this.subscribed = false
          return this.retry()
        }
      }
    })().catch((err) => log.warn({ err }, 'event subscription status stream failed'))
  }
}

export function durableSubscription(deps: SubscriptionDeps): Subscription {
  return new DurableSubscription(deps)
}
