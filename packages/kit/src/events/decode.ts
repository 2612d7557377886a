import type { JsMsg } from '@nats-io/jetstream'
import type { TSchema } from 'typebox'
import { eventValidator, type ContentMode, type EventRejection } from './cloudevents.js'
import type { Envelope } from './envelope.js'

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

/** What the consumer uses of a delivered message: a `JsMsg`, or a stand-in in unit tests. */
export type ConsumerMessage = Pick<JsMsg, 'subject' | 'headers' | 'data' | 'seq' | 'ack' | 'nak' | 'working'> & {
  info: Pick<JsMsg['info'], 'deliveryCount'>
}

/** A message and the event decoded from it. */
export interface Delivery {
  m: ConsumerMessage
  item: ConsumedEvent
}

export type Decoded = { ok: true; delivery: Delivery } | { ok: false; subject: string; reason: EventRejection; detail: string }

export type MessageDecoder = (m: ConsumerMessage) => Decoded

/**
 * Decodes messages on `<namespace>.<type>` against the schemas of `types`, structured or binary
 * mode (ce- headers) alike: either way the handler gets the normalised envelope.
 */
export function messageDecoder(namespace: string, types: Record<string, TSchema>): MessageDecoder {
  const prefix = namespace ? `${namespace}.` : ''
  const validator = eventValidator(types)
  const unprefixed = (subject: string) => (prefix && subject.startsWith(prefix) ? subject.slice(prefix.length) : subject)
  return (m) => {
    const subject = unprefixed(m.subject)
    const result = validator.decode({ headers: m.headers, body: m.data }, subject)
    if (!result.ok) return { ok: false, subject, reason: result.reason, detail: result.detail }
    const item = { event: result.event, mode: result.mode, subject, deliveryCount: m.info.deliveryCount, streamSequence: m.seq }
    return { ok: true, delivery: { m, item } }
  }
}
