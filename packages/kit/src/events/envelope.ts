import { randomUUID } from 'node:crypto'
import type { AnyEventEnvelope } from '@platform/contracts'

/**
 * A CloudEvents 1.0 event as handlers receive it, normalised from either content mode (see
 * cloudevents.ts). Events from other producers may lack `time` and `datacontenttype`.
 */
export interface Envelope<T = unknown> extends AnyEventEnvelope {
  data: T
}

/** An event this platform publishes: a UUID id, `time` and `datacontenttype` always set. */
export interface PublishedEnvelope<T = unknown> extends Envelope<T> {
  time: string
  datacontenttype: 'application/json'
}

/** A new event of ours, published as structured JSON (the outbox relay sets `Nats-Msg-Id` to its id). */
export function createEvent<T>(type: string, source: string, data: T, traceparent?: string): PublishedEnvelope<T> {
  return {
    specversion: '1.0',
    id: randomUUID(),
    type,
    source,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    ...(traceparent ? { traceparent } : {}),
    data
  }
}

/** The row a service inserts into its `outbox` table inside the transaction of the change. */
export function outboxRow(event: PublishedEnvelope): { id: string; type: string; envelope: object } {
  return { id: event.id, type: event.type, envelope: event }
}
