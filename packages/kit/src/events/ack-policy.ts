import { isDatabaseUnavailable } from '../db/errors.js'
import type { ConsumerTally } from './consumer-metrics.js'
import { deadLetterOf, errorDetail, type DeadLetter, type DeadLetterOrigin, type DeadLetterReason } from './dead-letter.js'
import type { ConsumerLog, OutageGate } from './outage.js'
import type { ConsumerMessage, Delivery } from './decode.js'

/**
 * Redelivery delay after the `n`th delivery: `baseMs` doubled per delivery up to `maxMs`, with ±10 %
 * jitter so replicas that failed together do not retry together.
 */
export function exponentialBackoff(baseMs: number, maxMs: number, random: () => number = Math.random): (n: number) => number {
  return (n) => {
    const ms = Math.min(baseMs * 2 ** Math.max(0, Math.min(n, 30) - 1), maxMs)
    return Math.round(ms * (0.9 + random() * 0.2))
  }
}

/** What becomes of an event whose handler threw. */
export type FailureFate = 'outage' | 'redeliver' | 'dead-letter'

/**
 * A database outage is never the event's fault: it pauses the consumer. Otherwise the event comes
 * again until `maxDeliveries`, then it is dead-lettered, unless the database stopped answering meanwhile.
 */
export async function failureFate(err: unknown, deliveryCount: number, maxDeliveries: number, healthy: () => Promise<boolean>): Promise<FailureFate> {
  if (isDatabaseUnavailable(err)) return 'outage'
  if (deliveryCount < maxDeliveries) return 'redeliver'
  return (await healthy()) ? 'dead-letter' : 'outage'
}

export interface FateDeps {
  tally: ConsumerTally
  gate: OutageGate
  backoff: (n: number) => number
  maxDeliveries: number
  healthy: () => Promise<boolean>
  origin: DeadLetterOrigin
  publish: (letter: DeadLetter) => Promise<void>
  log: ConsumerLog
}

/** Acks, naks and dead letters: every message leaves the consumer through one of these. */
export interface MessageFates {
  succeeded(msgs: ConsumerMessage[]): void
  /** The database is unreachable: the messages come again after a backoff and the consumer pauses. */
  outage(msgs: ConsumerMessage[], err: unknown): void
  /** The handler threw for this event alone: it comes again, or is dead-lettered after `maxDeliveries`. */
  failed(delivery: Delivery, err: unknown): Promise<void>
  /** Publishes the letter, then acks; a letter that cannot be published leaves the message to come again. */
  deadLetter(m: ConsumerMessage, subject: string, reason: DeadLetterReason, detail: string): Promise<void>
}

export function messageFates(deps: FateDeps): MessageFates {
  const { tally, gate, backoff, log } = deps
  const deadLetter: MessageFates['deadLetter'] = async (m, subject, reason, detail) => {
    const letter = deadLetterOf(m, subject, reason, detail, deps.origin)
    try {
      await deps.publish(letter)
      m.ack()
      tally.deadLettered(reason)
      log.warn({ reason, detail: letter.detail, subject, seq: m.seq }, 'event dead-lettered')
    } catch (err) {
      log.warn({ err, subject, seq: m.seq }, 'could not dead-letter the event; it will come again')
      m.nak(backoff(m.info.deliveryCount))
    }
  }
  const outage: MessageFates['outage'] = (msgs, err) => {
    for (const m of msgs) m.nak(backoff(m.info.deliveryCount))
    tally.failed(msgs.length)
    gate.enter(err)
  }
  return {
    deadLetter,
    outage,
    succeeded: (msgs) => {
      for (const m of msgs) m.ack()
      tally.processed(msgs.length)
      gate.clear()
    },
    failed: async ({ m, item }, err) => {
      const fate = await failureFate(err, item.deliveryCount, deps.maxDeliveries, deps.healthy)
      if (fate === 'outage') return outage([m], err)
      tally.failed(1)
      if (fate === 'dead-letter') return deadLetter(m, item.subject, 'HANDLER_FAILED', errorDetail(err))
      log.warn({ err, subject: item.subject, id: item.event.id, deliveries: item.deliveryCount }, 'event handler failed; redelivering')
      m.nak(backoff(item.deliveryCount))
    }
  }
}
