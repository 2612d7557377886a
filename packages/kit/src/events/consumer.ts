import type { FastifyInstance } from 'fastify'
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream'
import type { TSchema } from 'typebox'
import type { Registry } from 'prom-client'
import type { StreamKey } from '@platform/contracts'
import type { NatsHandle } from '../plugins/nats.js'
import { exponentialBackoff, messageFates } from './ack-policy.js'
import { batchApplier } from './apply.js'
import { consumerTally, type ConsumerStats } from './consumer-metrics.js'
import { publishDeadLetter } from './dead-letter.js'
import { messageDecoder, type ConsumedEvent } from './decode.js'
import { outageGate, type ConsumerLog } from './outage.js'
import { durableSubscription, type DurableConfig } from './subscription.js'
import { consumerWorker, progressAcks } from './worker.js'

export type { ConsumedEvent } from './decode.js'
export type { ConsumerStats } from './consumer-metrics.js'
export type { DeadLetter, DeadLetterReason } from './dead-letter.js'

export interface EventConsumerOptions {
  /** The stream to read; it is created when missing, like the dead-letter stream. */
  stream: StreamKey
  /** Durable consumer name: every replica uses the same one and shares the work. */
  durable: string
  /** Un-namespaced subject filter (e.g. `chat.events.message.created`); default: the whole stream. */
  filterSubject?: string
  /** Event type → schema of its `data`. Other types are dead-lettered as UNKNOWN_TYPE. */
  types: Record<string, TSchema>
  /**
   * Applies a batch of valid events in stream order and resolves once committed. It must be
   * idempotent: after a failure the same events come again, alone or in another batch.
   */
  handle(events: ConsumedEvent[]): Promise<void>
  /** Events per handler call [256]. */
  batchSize?: number
  /** Unacked messages the server lets all replicas hold together [1024]. */
  maxAckPending?: number
  /** Deliveries after which an event whose handler keeps failing (database healthy) is dead-lettered [10]. */
  maxDeliveries?: number
  /**
   * Time the server waits for an ack before redelivering [5000]: also how long a message whose ack was
   * lost (NATS restarted) waits. Messages held longer than half of it get progress acks (+WPI), so a
   * slow batch is not redelivered meanwhile.
   */
  ackWaitMs?: number
  /** First redelivery delay after a failure, doubled per delivery [500]. */
  backoffMs?: number
  /** Longest redelivery delay and longest pause between database probes [30000]. */
  maxBackoffMs?: number
  /** Probe used to tell a broken event from an outage; default `SELECT 1` on `fastify.db` when present. */
  healthy?: () => Promise<boolean>
  /** The clock of progress acks and of dead letters' time [Date.now]: tests move it instead of waiting. */
  now?: () => number
}

export interface EventConsumer {
  readonly durable: string
  /** Subscribed to JetStream and not paused. */
  readonly running: boolean
  /** Paused because the handler's database is unreachable; resumes by itself. */
  readonly paused: boolean
  readonly stats: ConsumerStats
  /** Stops pulling, finishes the batch in hand and hands unprocessed messages back to the server. */
  stop(): Promise<void>
}

/** An event consumer that runs once started: what `createEventConsumer` wires into an app. */
export interface StartableEventConsumer extends EventConsumer {
  /** Starts the loop and subscribes now and after every NATS reconnect; a second call does nothing. */
  start(): void
}

/** What a consumer needs from its app: NATS, a logger and a Prometheus registry. */
export interface ConsumerRuntime {
  nats: NatsHandle
  log: ConsumerLog
  metrics: Registry
}

function durableConfig(nats: NatsHandle, opts: EventConsumerOptions, ackWaitMs: number): DurableConfig {
  return {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ackWaitMs * 1_000_000,
    // Redelivery is unlimited on the server: this consumer decides when to dead-letter.
    max_deliver: -1,
    max_ack_pending: opts.maxAckPending ?? 1024,
    ...(opts.filterSubject ? { filter_subject: nats.subject(opts.filterSubject) } : {})
  }
}

/** After a reconnect: how many messages await an ack, when any do. */
function reportHandBack(log: ConsumerLog, counts: { held: number; inFlight: number; ackPending: number; ackWaitMs: number }): void {
  if (counts.held + counts.inFlight + counts.ackPending === 0) return
  log.warn(
    counts,
    'NATS reconnected with unacknowledged messages: those held here go back for redelivery now, the others come back after the ack wait'
  )
}

/**
 * A durable pull consumer on a JetStream stream, without Fastify: the decode step, the ack policy,
 * the outage gate, the worker loop with its progress acks and the subscription, wired together.
 */
export function eventConsumer(runtime: ConsumerRuntime, opts: EventConsumerOptions): StartableEventConsumer {
  const { nats, log } = runtime
  const namespace = nats.subject('').replace(/\.$/, '')
  const batchSize = opts.batchSize ?? 256
  const ackWaitMs = opts.ackWaitMs ?? 5_000
  const now = opts.now ?? Date.now
  const backoff = exponentialBackoff(opts.backoffMs ?? 500, opts.maxBackoffMs ?? 30_000)
  const probe = opts.healthy ?? (async () => true)
  const healthy = () => probe().catch(() => false)
  const tally = consumerTally(runtime.metrics, opts.durable)
  const gate = outageGate({ healthy, backoff, log, onChange: (paused) => tally.paused(paused) })
  const origin = { stream: nats.streamName(opts.stream), consumer: opts.durable, now }
  const fates = messageFates({
    tally,
    gate,
    backoff,
    healthy,
    origin,
    log,
    maxDeliveries: opts.maxDeliveries ?? 10,
    publish: (letter) => publishDeadLetter(nats, letter)
  })
  const apply = batchApplier({
    decode: messageDecoder(namespace, opts.types),
    handle: (events) => opts.handle(events),
    fates,
    paused: () => gate.paused,
    backoff,
    log
  })
  const worker = consumerWorker({ batchSize, apply, gate, log, canWork: () => nats.connected && !subscription.reconnectPending })
  const progress = progressAcks({ ackWaitMs, now, held: () => worker.held(), connected: () => nats.connected })
  const subscription = durableSubscription({
    nats,
    namespace,
    stream: opts.stream,
    config: durableConfig(nats, opts, ackWaitMs),
    batchSize,
    log,
    deliver: (m) => {
      progress.told(m)
      worker.push(m)
    },
    handBack: (info) => reportHandBack(log, { ...worker.handBack(), ackPending: info?.num_ack_pending ?? 0, ackWaitMs }),
    wake: () => worker.wake()
  })
  return consumerHandle(opts.durable, { nats, gate, tally, worker, progress, subscription })
}

interface ConsumerParts {
  nats: ConsumerRuntime['nats']
  gate: ReturnType<typeof outageGate>
  tally: ReturnType<typeof consumerTally>
  worker: ReturnType<typeof consumerWorker>
  progress: ReturnType<typeof progressAcks>
  subscription: ReturnType<typeof durableSubscription>
}

/** Starts the parts once, stops them in order: no more progress acks, no more pulls, then the work in hand. */
function consumerHandle(durable: string, { nats, gate, tally, worker, progress, subscription }: ConsumerParts): StartableEventConsumer {
  let started = false
  let closing = false
  return {
    durable,
    get running() {
      return subscription.subscribed && !gate.paused && !closing && nats.connected
    },
    get paused() {
      return gate.paused
    },
    stats: tally.stats,
    start: () => {
      if (started || closing) return
      started = true
      worker.start()
      progress.start()
      subscription.start()
    },
    stop: async () => {
      if (closing) return
      closing = true
      progress.stop()
      subscription.stop()
      await worker.stop()
    }
  }
}

/** `SELECT 1` on the app's pool when it has one: a handler's database outage pauses the consumer. */
function databaseProbe(fastify: FastifyInstance): () => Promise<boolean> {
  if (!fastify.hasDecorator('db')) return async () => true
  return async () => {
    await fastify.db.pool.query('SELECT 1')
    return true
  }
}

/**
 * Starts a durable pull consumer on a JetStream stream once the app is ready, shared by every
 * replica. Malformed messages go to `dlq.<subject>` with the reason and are acked; failed handlers
 * are nak'd with exponential backoff; a database outage pauses it (never dead-letters) until the
 * database answers again. It re-subscribes after NATS reconnects, reports in /ready, counts in
 * fastify.metrics and stops with the app.
 */
export function createEventConsumer(fastify: FastifyInstance, opts: EventConsumerOptions): EventConsumer {
  const consumer = eventConsumer(
    { nats: fastify.nats, log: fastify.log.child({ consumer: opts.durable }), metrics: fastify.metrics },
    { ...opts, healthy: opts.healthy ?? databaseProbe(fastify) }
  )
  fastify.readiness.add(`consumer:${opts.durable}`, { required: false, check: () => (consumer.running ? 'up' : 'down') })
  fastify.addHook('onReady', async () => consumer.start())
  fastify.addHook('onClose', () => consumer.stop())
  return consumer
}
