import { isDatabaseUnavailable } from '../db/errors.js'
import type { MessageFates } from './ack-policy.js'
import type { ConsumedEvent, ConsumerMessage, Delivery, MessageDecoder } from './decode.js'
import type { ConsumerLog } from './outage.js'

export interface ApplyDeps {
  decode: MessageDecoder
  handle(events: ConsumedEvent[]): Promise<void>
  fates: MessageFates
  /** True while a database outage pauses the consumer: what is left of a batch goes back. */
  paused: () => boolean
  backoff: (n: number) => number
  log: ConsumerLog
}

/**
 * One pulled batch from delivery to fate: refused messages are dead-lettered, the valid ones go to
 * the handler together and are acked once it committed. When the batch fails, each event gets an
 * attempt of its own, so one bad event does not hold back the others.
 */
export function batchApplier(deps: ApplyDeps): (msgs: ConsumerMessage[]) => Promise<void> {
  const { fates, log } = deps

  const oneByOne = async (valid: Delivery[]) => {
    for (const delivery of valid) {
      if (deps.paused()) {
        delivery.m.nak(deps.backoff(delivery.item.deliveryCount))
        continue
      }
      try {
        await deps.handle([delivery.item])
        fates.succeeded([delivery.m])
      } catch (err) {
        await fates.failed(delivery, err)
      }
    }
  }

  return async (msgs) => {
    const valid: Delivery[] = []
    for (const m of msgs) {
      const decoded = deps.decode(m)
      if (decoded.ok) valid.push(decoded.delivery)
      else await fates.deadLetter(m, decoded.subject, decoded.reason, decoded.detail)
    }
    if (valid.length === 0) return
    try {
      await deps.handle(valid.map((v) => v.item))
      return fates.succeeded(valid.map((v) => v.m))
    } catch (err) {
      if (isDatabaseUnavailable(err))
        return fates.outage(
          valid.map((v) => v.m),
          err
        )
      if (valid.length === 1) return fates.failed(valid[0]!, err)
      log.warn({ err, size: valid.length }, 'event batch failed; retrying its events one by one')
    }
    await oneByOne(valid)
  }
}
