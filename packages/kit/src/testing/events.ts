import { connect, type NatsConnection } from '@nats-io/transport-node'
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
  const collector: EventCollector = { events: [], deliveries: 0, close: async () => {} }
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
    await messages.close().catch(() => {})
    await jsm.consumers.delete(name, durable).catch(() => {})
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

/** Publishes envelopes (or raw payloads) to JetStream on `<namespace>.<subject>`, awaiting each ack. */
export async function publishEvents(url: string, namespace: string, items: Array<{ subject: string; payload: unknown }>): Promise<void> {
  const nc = await connect({ servers: url })
  try {
    const js = jetstream(nc)
    for (const { subject, payload } of items) {
      await js.publish(namespace ? `${namespace}.${subject}` : subject, typeof payload === 'string' ? payload : JSON.stringify(payload))
    }
  } finally {
    await nc.close()
  }
}
