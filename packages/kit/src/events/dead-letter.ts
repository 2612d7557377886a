import type { JsMsg } from '@nats-io/jetstream'
import type { NatsHandle } from '../plugins/nats.js'
import type { EventRejection } from './cloudevents.js'

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

/** Where a dead letter comes from: the stream, the durable consumer, and the time it is written. */
export interface DeadLetterOrigin {
  stream: string
  consumer: string
  now: () => number
}

/** The parts of a delivered message a dead letter keeps. */
export type DeadMessage = Pick<JsMsg, 'seq' | 'data' | 'headers'> & { info: Pick<JsMsg['info'], 'deliveryCount'> }

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The body as text when it is UTF-8, else as base64. */
export function payloadOf(data: Uint8Array): Pick<DeadLetter, 'payload' | 'payloadEncoding'> {
  try {
    return { payload: utf8.decode(data) }
  } catch {
    return { payload: Buffer.from(data).toString('base64'), payloadEncoding: 'base64' }
  }
}

/** The letter for a refused message; `subject` is the one without the namespace. */
export function deadLetterOf(m: DeadMessage, subject: string, reason: DeadLetterReason, detail: string, origin: DeadLetterOrigin): DeadLetter {
  return {
    reason,
    detail: detail.slice(0, 1000),
    subject,
    stream: origin.stream,
    consumer: origin.consumer,
    streamSequence: m.seq,
    deliveryCount: m.info.deliveryCount,
    deadLetteredAt: new Date(origin.now()).toISOString(),
    ...payloadOf(m.data),
    ...(m.headers ? { headers: Object.fromEntries(m.headers) } : {})
  }
}

/** The text of a thrown value, for a letter's `detail`. */
export function errorDetail(err: unknown): string {
  return typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string' ? err.message : String(err)
}

/**
 * Publishes the letter on `dlq.<subject>` into the dead-letter stream; its `Nats-Msg-Id` is the
 * stream and sequence, so the letter of a message dead-lettered twice is stored once.
 */
export async function publishDeadLetter(nats: Pick<NatsHandle, 'js' | 'subject'>, letter: DeadLetter): Promise<void> {
  await nats.js().publish(nats.subject(`dlq.${letter.subject}`), JSON.stringify(letter), { msgID: `dlq:${letter.stream}:${letter.streamSequence}` })
}
