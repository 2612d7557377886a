import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, DeliverPolicy, AckPolicy } from '@nats-io/jetstream'
import type { AnyEventEnvelope, StreamKey } from '@platform/contracts'
import { ensureStream } from '../events/streams.js'

/**
 * An idempotent consumer for tests: reads a stream from the start, records every delivery and
 * the distinct event ids, acking each one. `deliveries` counts duplicates the broker sent.
 */
export interface EventCollector {
  events: AnyEventEnvelope[]
  deliveries: number
  /**
   * True once the broker has delivered the whole stream to this collector and heard every ack: from then
   * on `deliveries` only changes if something new is published. Poll it with waitFor instead of pausing
   * before asserting that nothing was delivered twice.
   */
  settled(): Promise<boolean>
  /** How many messages the stream holds: a publish that Nats-Msg-Id deduplicated is not stored twice. */
  stored(): Promise<number>
  close(): Promise<void>
}

export async function collectEvents(url: string, namespace: string, stream: StreamKey): Promise<EventCollector> {
  const nc: NatsConnection = await connect({ servers: url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 })
  const jsm = await jetstreamManager(nc)
  const name = await ensureStream(jsm, namespace, stream)
  const durable = `test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
  await jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All })
  const consumer = await jetstream(nc).consumers.get(name, durable)
  const seen = new Set<string>()
  const collector: EventCollector = {
    events: [],
    deliveries: 0,
    settled: async () => {
      const info = await jsm.consumers.info(name, durable)
      return info.num_pending === 0 && info.num_ack_pending === 0
    },
    stored: async () => (await jsm.streams.info(name)).state.messages,
    close: async () => {}
  }
  const messages = await consumer.consume({ max_messages: 100 })
  void (async () => {
    for await (const m of messages) {
      collector.deliveries++
      const event = m.json<AnyEventEnvelope>()
      if (!seen.has(event.id)) {
        seen.add(event.id)
        collector.events.push(event)
      }
      m.ack()
    }
  })()
  collector.close = async () => {
    // Best effort: the test may have cut NATS; the durable consumer goes with the stream at teardown.
    await messages.close().catch(() => undefined)
    await jsm.consumers.delete(name, durable).catch(() => undefined)
    await nc.close()
  }
  return collector
}

/** Deletes the streams a test created in its namespace. */
export async function deleteStreams(url: string, namespace: string): Promise<void> {
  const nc = await connect({ servers: url })
  try {
    const jsm = await jetstreamManager(nc)
    for await (const s of jsm.streams.list()) {
      if (s.config.name.startsWith(`${namespace.toUpperCase()}_`)) await jsm.streams.delete(s.config.name)
    }
  } finally {
    await nc.close()
  }
}

/**
 * Publishes envelopes (or raw payloads) to JetStream on `<namespace>.<subject>`, awaiting each ack;
 * `headers` become NATS headers (e.g. a CloudEvents binary-mode message's `ce-` attributes).
 */
export async function publishEvents(
  url: string,
  namespace: string,
  items: Array<{ subject: string; payload: unknown; headers?: Record<string, string> }>
): Promise<void> {
  const nc = await connect({ servers: url })
  try {
    const js = jetstream(nc)
    for (const { subject, payload, headers } of items) {
      const h = headers ? natsHeaders() : undefined
      for (const [name, value] of Object.entries(headers ?? {})) h!.set(name, value)
      await js.publish(
        namespace ? `${namespace}.${subject}` : subject,
        typeof payload === 'string' ? payload : JSON.stringify(payload),
        h ? { headers: h } : {}
      )
    }
  } finally {
    await nc.close()
  }
}
