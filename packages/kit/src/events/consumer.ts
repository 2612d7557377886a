import type { FastifyInstance } from 'fastify'
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg
} from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { TSchema } from 'typebox'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { StreamKey } from '@platform/contracts'
import { isDatabaseUnavailable } from '../db/errors.js'
import { ensureStream } from './streams.js'
import type { Envelope } from './envelope.js'
import { eventValidator, type ContentMode, type EventRejection } from './cloudevents.js'

/** Why a message went to the dead-letter subject. */
export type DeadLetterReason = EventRejection | 'HANDLER_FAILED'

/**
 * What is published on `dlq.<original subject>`: the original message (body and headers) plus why it
 * was refused, so a binary-mode event can be replayed as it came.
 */
export interface DeadLetter {
  reason: DeadLetterReason
  detail: string
  subject: string
  stream: string
  consumer: string
  streamSequence: number
  deliveryCount: number
  deadLetteredAt: string
  /** The body as text, or base64 when it is not UTF-8 (`payloadEncoding`). */
  payload: string
  payloadEncoding?: 'base64'
  /** The message's NATS headers as delivered (binary-mode attributes included), when it had any. */
  headers?: Record<string, string[]>
}

/** A valid event as a handler receives it. */
export interface ConsumedEvent<T = unknown> {
  /** The normalised envelope, whatever the content mode it came in. */
  event: Envelope<T>
  mode: ContentMode
  /** The subject without the namespace: equal to `event.type`. */
  subject: string
  deliveryCount: number
  streamSequence: number
}

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
}

export interface ConsumerStats {
  processed: number
  failed: number
  deadLettered: number
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

function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter<string> {
  return (registry.getSingleMetric(name) as Counter<string> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] })
}

function consumerMetrics(registry: Registry) {
  return {
    processed: counter(registry, 'event_consumer_processed_total', 'Events handled and acked', ['consumer']),
    failed: counter(registry, 'event_consumer_failed_total', 'Handler failures (the event is redelivered with backoff)', ['consumer']),
    deadLettered: counter(registry, 'event_consumer_dead_lettered_total', 'Events sent to the dead-letter subject', [
      'consumer',
      'reason'
    ]),
    paused:
      (registry.getSingleMetric('event_consumer_paused') as Gauge<string> | undefined) ??
      new Gauge({ name: 'event_consumer_paused', help: '1 while paused by a database outage', labelNames: ['consumer'], registers: [registry] })
  }
}

async function upsertConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }) {
  try {
    await jsm.consumers.add(stream, config)
  } catch {
    // It exists with another configuration (e.g. a changed ack wait): update what may change.
    const { ack_wait, max_ack_pending, max_deliver } = config
    await jsm.consumers.update(stream, config.durable_name, { ack_wait, max_ack_pending, max_deliver })
  }
}

const sleeper = () => {
  let wakeUp: (() => void) | null = null
  let timer: NodeJS.Timeout | undefined
  return {
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        wakeUp = resolve
        timer = setTimeout(resolve, ms)
      }).finally(() => {
        wakeUp = null
      }),
    wake: () => {
      clearTimeout(timer)
      wakeUp?.()
    }
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
  const batchSize = opts.batchSize ?? 256
  const maxDeliveries = opts.maxDeliveries ?? 10
  const backoffMs = opts.backoffMs ?? 500
  const maxBackoffMs = opts.maxBackoffMs ?? 30_000
  const ackWaitMs = opts.ackWaitMs ?? 5_000
  const nats = fastify.nats
  const prefix = nats.subject('')
  const namespace = prefix.replace(/\.$/, '')
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  const streamName = nats.streamName(opts.stream)
  const log = fastify.log.child({ consumer: opts.durable })
  const validator = eventValidator(opts.types)
  const metrics = consumerMetrics(fastify.metrics)
  const labels = { consumer: opts.durable }
  const stats: ConsumerStats = { processed: 0, failed: 0, deadLettered: 0 }
  const healthy =
    opts.healthy ??
    (fastify.hasDecorator('db')
      ? async () => {
          await fastify.db.pool.query('SELECT 1')
          return true
        }
      : async () => true)
  const config: Partial<ConsumerConfig> & { durable_name: string } = {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ackWaitMs * 1_000_000,
    // Redelivery is unlimited on the server: this consumer decides when to dead-letter.
    max_deliver: -1,
    max_ack_pending: opts.maxAckPending ?? 1024,
    ...(opts.filterSubject ? { filter_subject: nats.subject(opts.filterSubject) } : {})
  }

  let closing = false
  let started = false
  let generation = 0
  let messages: ConsumerMessages | null = null
  let subscribed = false
  let paused = false
  let outageProbes = 0
  let retryTimer: NodeJS.Timeout | undefined
  let retries = 0
  let wakeLoop: (() => void) | null = null
  let loop: Promise<void> | null = null
  const buffer: JsMsg[] = []
  /** The batch being handled right now. */
  let inFlight: JsMsg[] = []
  /** When the server last heard about each held message (its delivery or a progress ack). */
  const lastTold = new WeakMap<JsMsg, number>()
  let progressTimer: NodeJS.Timeout | undefined
  let connectedOnce = false
  /** NATS came back and what this consumer holds has not been handed back yet. */
  let reconnectPending = false
  const pause = sleeper()

  const backoff = (n: number) => {
    const ms = Math.min(backoffMs * 2 ** Math.max(0, Math.min(n, 30) - 1), maxBackoffMs)
    return Math.round(ms * (0.9 + Math.random() * 0.2))
  }
  const probe = () => healthy().catch(() => false)
  const unprefixed = (subject: string) => (prefix && subject.startsWith(prefix) ? subject.slice(prefix.length) : subject)

  const setPaused = (value: boolean, err?: unknown) => {
    if (paused === value) return
    paused = value
    metrics.paused.set(labels, value ? 1 : 0)
    if (value) log.warn({ err }, 'database unavailable: event consumer paused')
    else log.info('database available again: event consumer resumed')
  }

  const payloadOf = (data: Uint8Array): Pick<DeadLetter, 'payload' | 'payloadEncoding'> => {
    try {
      return { payload: utf8.decode(data) }
    } catch {
      return { payload: Buffer.from(data).toString('base64'), payloadEncoding: 'base64' }
    }
  }

  const deadLetter = async (m: JsMsg, subject: string, reason: DeadLetterReason, detail: string) => {
    const letter: DeadLetter = {
      reason,
      detail: detail.slice(0, 1000),
      subject,
      stream: streamName,
      consumer: opts.durable,
      streamSequence: m.seq,
      deliveryCount: m.info.deliveryCount,
      deadLetteredAt: new Date().toISOString(),
      ...payloadOf(m.data),
      ...(m.headers ? { headers: Object.fromEntries(m.headers) } : {})
    }
    try {
      await nats.js().publish(nats.subject(`dlq.${subject}`), JSON.stringify(letter), { msgID: `dlq:${streamName}:${m.seq}` })
      m.ack()
      stats.deadLettered++
      metrics.deadLettered.inc({ ...labels, reason })
      log.warn({ reason, detail: letter.detail, subject, seq: m.seq }, 'event dead-lettered')
    } catch (err) {
      log.warn({ err, subject, seq: m.seq }, 'could not dead-letter the event; it will come again')
      m.nak(backoff(m.info.deliveryCount))
    }
  }

  const outage = (msgs: JsMsg[], err: unknown) => {
    for (const m of msgs) m.nak(backoff(m.info.deliveryCount))
    stats.failed += msgs.length
    metrics.failed.inc(labels, msgs.length)
    setPaused(true, err)
  }

  const handlerFailed = async (m: JsMsg, item: ConsumedEvent, err: unknown) => {
    stats.failed++
    metrics.failed.inc(labels)
    if (item.deliveryCount >= maxDeliveries) {
      if (await probe()) return deadLetter(m, item.subject, 'HANDLER_FAILED', String((err as Error)?.message ?? err))
      // The database stopped answering meanwhile: an outage, never a reason to dead-letter.
      m.nak(backoff(item.deliveryCount))
      return setPaused(true, err)
    }
    log.warn({ err, subject: item.subject, id: item.event.id, deliveries: item.deliveryCount }, 'event handler failed; redelivering')
    m.nak(backoff(item.deliveryCount))
  }

  const succeeded = (msgs: JsMsg[]) => {
    for (const m of msgs) m.ack()
    stats.processed += msgs.length
    metrics.processed.inc(labels, msgs.length)
    outageProbes = 0
    setPaused(false)
  }

  const processBatch = async (msgs: JsMsg[]) => {
    const valid: Array<{ m: JsMsg; item: ConsumedEvent }> = []
    for (const m of msgs) {
      const subject = unprefixed(m.subject)
      // Structured or binary mode (ce- headers): either way the handler gets the normalised envelope.
      const result = validator.decode({ headers: m.headers, body: m.data }, subject)
      if (!result.ok) await deadLetter(m, subject, result.reason, result.detail)
      else valid.push({ m, item: { event: result.event, mode: result.mode, subject, deliveryCount: m.info.deliveryCount, streamSequence: m.seq } })
    }
    if (valid.length === 0) return
    try {
      await opts.handle(valid.map((v) => v.item))
      return succeeded(valid.map((v) => v.m))
    } catch (err) {
      if (isDatabaseUnavailable(err)) return outage(valid.map((v) => v.m), err)
      if (valid.length === 1) return handlerFailed(valid[0]!.m, valid[0]!.item, err)
      log.warn({ err, size: valid.length }, 'event batch failed; retrying its events one by one')
    }
    // One bad event must not hold back the others: each gets its own attempt and its own fate.
    for (const { m, item } of valid) {
      if (paused) {
        m.nak(backoff(item.deliveryCount))
        continue
      }
      try {
        await opts.handle([item])
        succeeded([m])
      } catch (err) {
        if (isDatabaseUnavailable(err)) outage([m], err)
        else await handlerFailed(m, item, err)
      }
    }
  }

  /** While paused: probe with backoff, and hand buffered messages back rather than let them time out here. */
  const waitForDatabase = async () => {
    while (paused && !closing) {
      outageProbes++
      await pause.sleep(backoff(outageProbes))
      if (closing) return
      if (await probe()) return setPaused(false)
      for (const m of buffer.splice(0)) m.nak(backoff(outageProbes))
    }
  }

  const run = async () => {
    while (!closing) {
      if (paused) {
        await waitForDatabase()
        continue
      }
      // While NATS is away acks are lost (the client drops what it could not send when it reconnects)
      // and the server would redeliver those messages anyway: wait for it, and for the hand-back.
      if (buffer.length === 0 || !nats.connected || reconnectPending) {
        await new Promise<void>((resolve) => {
          wakeLoop = resolve
        })
        wakeLoop = null
        continue
      }
      try {
        inFlight = buffer.splice(0, batchSize)
        await processBatch(inFlight)
      } catch (err) {
        log.error({ err }, 'event batch processing failed unexpectedly')
      } finally {
        inFlight = []
      }
    }
  }

  const retry = () => {
    clearTimeout(retryTimer)
    if (closing) return
    retries++
    retryTimer = setTimeout(() => {
      const nc = nats.connection
      if (nc && nats.connected) void subscribe(nc)
      else retry()
    }, Math.min(250 * 2 ** Math.min(retries, 5), 5000))
  }

  /** Progress acks for what is held (waiting or in the batch being handled), so the ack wait can stay short. */
  const keepHeld = () => {
    if (!nats.connected) return
    const now = Date.now()
    for (const held of [inFlight, buffer]) {
      for (const m of held) {
        if (now - (lastTold.get(m) ?? 0) < ackWaitMs / 2) continue
        m.working() // a no-op for a message already acked or nak'd
        lastTold.set(m, now)
      }
    }
  }

  /**
   * After a reconnect (e.g. a NATS restart): says how many messages await an ack and hands back those
   * held here, so the server redelivers them at once; acks lost with the old connection leave the rest
   * pending on the server until the ack wait ends.
   */
  const handBack = (info: ConsumerInfo | null) => {
    const held = buffer.splice(0)
    for (const m of held) m.nak()
    const counts = { held: held.length, inFlight: inFlight.length, ackPending: info?.num_ack_pending ?? 0, ackWaitMs }
    if (counts.held + counts.inFlight + counts.ackPending > 0) {
      log.warn(counts, 'NATS reconnected with unacknowledged messages: those held here go back for redelivery now, the others come back after the ack wait')
    }
  }

  /** (Re)creates the streams, the durable consumer and the pull subscription on this connection. */
  const subscribe = async (nc: NatsConnection) => {
    if (closing) return
    const gen = ++generation
    clearTimeout(retryTimer)
    try {
      const jsm = await jetstreamManager(nc)
      await ensureStream(jsm, namespace, opts.stream)
      await ensureStream(jsm, namespace, 'deadLetter')
      const reconnected = reconnectPending
      const existing = reconnected ? await jsm.consumers.info(streamName, opts.durable).catch(() => null) : null
      await upsertConsumer(jsm, streamName, config)
      if (reconnected && reconnectPending) {
        reconnectPending = false
        handBack(existing)
      }
      // The durable survived: the client's subscription pulls again by itself after a reconnect, and
      // replacing it would lose what the server sends to the old one meanwhile (pending until the ack wait).
      if (existing && messages && subscribed && gen === generation) {
        retries = 0
        wakeLoop?.()
        return
      }
      const consumer = await jetstream(nc).consumers.get(streamName, opts.durable)
      const next = await consumer.consume({
        max_messages: batchSize,
        callback: (m) => {
          lastTold.set(m, Date.now())
          buffer.push(m)
          wakeLoop?.()
        }
      })
      if (gen !== generation || closing) {
        next.stop()
        return
      }
      // Messages the previous subscription delivered stay in the buffer and are handled as usual.
      const previous = messages
      messages = next
      subscribed = true
      retries = 0
      previous?.stop()
      wakeLoop?.()
      log.info({ stream: streamName }, 'event consumer subscribed')
      void next.closed().then((err) => {
        if (messages !== next || closing) return
        subscribed = false
        log.warn({ err }, 'event subscription ended; subscribing again')
        retry()
      })
      // A durable deleted under us (or a stream recreated empty) is not recreated by the client: do it here.
      void (async () => {
        for await (const s of next.status()) {
          if (messages !== next || closing) return
          if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
            log.warn({ notification: s.type }, 'event consumer lost; creating it again')
            subscribed = false
            return retry()
          }
        }
      })().catch(() => {})
    } catch (err) {
      if (gen !== generation) return
      subscribed = false
      log.warn({ err }, 'could not subscribe the event consumer; retrying')
      retry()
    }
  }

  const stop = async () => {
    if (closing) return
    closing = true
    clearTimeout(retryTimer)
    clearInterval(progressTimer)
    messages?.stop()
    messages = null
    subscribed = false
    pause.wake()
    wakeLoop?.()
    await loop
    // Unhandled deliveries go back at once, so another replica takes them without waiting for ack_wait.
    for (const m of buffer.splice(0)) m.nak()
  }

  fastify.readiness.add(`consumer:${opts.durable}`, {
    required: false,
    check: () => (subscribed && !paused && nats.connected ? 'up' : 'down')
  })
  fastify.addHook('onReady', async () => {
    if (started) return
    started = true
    loop = run()
    progressTimer = setInterval(keepHeld, Math.max(ackWaitMs / 4, 100)).unref()
    nats.onConnect((nc) => {
      if (connectedOnce) reconnectPending = true
      connectedOnce = true
      return subscribe(nc)
    })
  })
  fastify.addHook('onClose', stop)

  return {
    durable: opts.durable,
    get running() {
      return subscribed && !paused && !closing && nats.connected
    },
    get paused() {
      return paused
    },
    stats,
    stop
  }
}
