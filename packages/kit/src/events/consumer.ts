import type { FastifyInstance } from 'fastify'
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg
} from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import { Counter, Gauge, type Registry } from 'prom-client'
import { AnyEventEnvelope, type StreamKey } from '@platform/contracts'
import { isDatabaseUnavailable } from '../db/errors.js'
import { ensureStream } from './streams.js'
import type { Envelope } from './envelope.js'

/** Why a message was refused before reaching its handler. */
export type EventRejection = 'INVALID_JSON' | 'INVALID_ENVELOPE' | 'UNKNOWN_TYPE' | 'INVALID_DATA'
/** Why a message went to the dead-letter subject. */
export type DeadLetterReason = EventRejection | 'HANDLER_FAILED'

export type EventCheck =
  | { ok: true; event: Envelope }
  | { ok: false; reason: EventRejection; detail: string }

/** What is published on `dlq.<original subject>`: the original payload as text plus why it was refused. */
export interface DeadLetter {
  reason: DeadLetterReason
  detail: string
  subject: string
  stream: string
  consumer: string
  streamSequence: number
  deliveryCount: number
  deadLetteredAt: string
  payload: string
}

/** A valid event as a handler receives it. */
export interface ConsumedEvent<T = unknown> {
  event: Envelope<T>
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
  /** Time the server waits for an ack before redelivering [30000]. */
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

let envelopeValidator: Validator | undefined

function describe(validator: Validator, value: unknown): string {
  return [...validator.Errors(value)]
    .slice(0, 3)
    .map((e) => `${e.instancePath || '/'} ${e.message}`)
    .join('; ')
}

/** Builds the check every consumer (and HTTP intake) applies: JSON, CloudEvents envelope, known type, data schema. */
export function eventValidator(types: Record<string, TSchema>): {
  check(value: unknown, expectedType?: string): EventCheck
  parse(text: string, expectedType?: string): EventCheck
} {
  envelopeValidator ??= Compile(AnyEventEnvelope)
  const envelope = envelopeValidator
  const data = new Map(Object.entries(types).map(([type, schema]) => [type, Compile(schema)]))
  const check = (value: unknown, expectedType?: string): EventCheck => {
    if (!envelope.Check(value)) return { ok: false, reason: 'INVALID_ENVELOPE', detail: describe(envelope, value) }
    const event = value as Envelope
    const validator = data.get(event.type)
    if (!validator) return { ok: false, reason: 'UNKNOWN_TYPE', detail: `no handler for event type "${event.type}"` }
    if (expectedType !== undefined && event.type !== expectedType) {
      return { ok: false, reason: 'INVALID_ENVELOPE', detail: `type "${event.type}" does not match subject "${expectedType}"` }
    }
    if (!validator.Check(event.data)) return { ok: false, reason: 'INVALID_DATA', detail: describe(validator, event.data) }
    return { ok: true, event }
  }
  const parse = (text: string, expectedType?: string): EventCheck => {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      return { ok: false, reason: 'INVALID_JSON', detail: (err as Error).message }
    }
    return check(value, expectedType)
  }
  return { check, parse }
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
  const nats = fastify.nats
  const prefix = nats.subject('')
  const namespace = prefix.replace(/\.$/, '')
  const decoder = new TextDecoder()
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
    ack_wait: (opts.ackWaitMs ?? 30_000) * 1_000_000,
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
      payload: decoder.decode(m.data)
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
      const result = validator.parse(decoder.decode(m.data), subject)
      if (!result.ok) await deadLetter(m, subject, result.reason, result.detail)
      else valid.push({ m, item: { event: result.event, subject, deliveryCount: m.info.deliveryCount, streamSequence: m.seq } })
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
      if (buffer.length === 0) {
        await new Promise<void>((resolve) => {
          wakeLoop = resolve
        })
        wakeLoop = null
        continue
      }
      try {
        await processBatch(buffer.splice(0, batchSize))
      } catch (err) {
        log.error({ err }, 'event batch processing failed unexpectedly')
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

  /** (Re)creates the streams, the durable consumer and the pull subscription on this connection. */
  const subscribe = async (nc: NatsConnection) => {
    if (closing) return
    const gen = ++generation
    clearTimeout(retryTimer)
    try {
      const jsm = await jetstreamManager(nc)
      await ensureStream(jsm, namespace, opts.stream)
      await ensureStream(jsm, namespace, 'deadLetter')
      await upsertConsumer(jsm, streamName, config)
      const consumer = await jetstream(nc).consumers.get(streamName, opts.durable)
      const next = await consumer.consume({
        max_messages: batchSize,
        callback: (m) => {
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
    nats.onConnect((nc) => subscribe(nc))
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
