import { randomUUID } from 'node:crypto'
import type { AnyEventEnvelope } from '@platform/contracts'

/** A CloudEvents 1.0 envelope whose `type` is the (un-namespaced) subject. */
export interface Envelope<T = unknown> extends AnyEventEnvelope {
  data: T
}

export function createEvent<T>(type: string, source: string, data: T, traceparent?: string): Envelope<T> {
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
export function outboxRow(event: Envelope): { id: string; type: string; envelope: object } {
  return { id: event.id, type: event.type, envelope: event }
}
