import type { ConsumerMessage } from './decode.js'
import type { ConsumerLog, OutageGate } from './outage.js'

export interface WorkerDeps {
  batchSize: number
  apply: (msgs: ConsumerMessage[]) => Promise<void>
  gate: OutageGate
  /**
   * False while NATS is away or has just come back: acks would be lost (the client drops what it could
   * not send when it reconnects) and the server redelivers those messages anyway.
   */
  canWork: () => boolean
  log: ConsumerLog
}

/** What the consumer holds: messages waiting for the loop and the batch being handled. */
export interface ConsumerWorker {
  /** A message from the subscription. */
  push(m: ConsumerMessage): void
  /** Something the loop waits for may have changed. */
  wake(): void
  /** Waiting and in-flight messages, for progress acks. */
  held(): ConsumerMessage[][]
  /** Naks the waiting messages (the server redelivers them at once) and says how many there were and are in flight. */
  handBack(): { held: number; inFlight: number }
  start(): void
  /** Ends the loop after the batch in hand and gives the waiting messages back. */
  stop(): Promise<void>
}

/** The loop that takes buffered messages in batches of `batchSize` and applies them, pausing during outages. */
export function consumerWorker(deps: WorkerDeps): ConsumerWorker {
  const buffer: ConsumerMessage[] = []
  let inFlight: ConsumerMessage[] = []
  let closing = false
  // Waking a loop that is not idle calls a promise's spent resolve: a no-op.
  let wakeLoop = () => {}
  let loop: Promise<void> | null = null

  const idle = () => new Promise<void>((resolve) => (wakeLoop = resolve))
  const release = (delayMs?: number) => {
    const held = buffer.splice(0)
    for (const m of held) m.nak(delayMs)
    return held.length
  }

  const run = async () => {
    while (!closing) {
      if (deps.gate.paused) {
        await deps.gate.wait(release, () => closing)
        continue
      }
      if (buffer.length === 0 || !deps.canWork()) {
        await idle()
        continue
      }
      try {
        inFlight = buffer.splice(0, deps.batchSize)
        await deps.apply(inFlight)
      } catch (err) {
        deps.log.error({ err }, 'event batch processing failed unexpectedly')
      } finally {
        inFlight = []
      }
    }
  }

  return {
    push: (m) => {
      buffer.push(m)
      wakeLoop()
    },
    wake: () => wakeLoop(),
    held: () => [inFlight, buffer],
    handBack: () => ({ held: release(), inFlight: inFlight.length }),
    start: () => {
      loop ??= run()
    },
    stop: async () => {
      closing = true
      deps.gate.wake()
      wakeLoop()
      await loop
      // Unhandled deliveries go back at once, so another replica takes them without waiting for ack_wait.
      release()
    }
  }
}

export interface ProgressAcksDeps {
  ackWaitMs: number
  now: () => number
  held: () => Array<Array<Pick<ConsumerMessage, 'working'>>>
  connected: () => boolean
}

/** Progress acks (+WPI) for held messages, so the ack wait can stay short while a slow batch is handled. */
export interface ProgressAcks {
  /** The server just delivered `m` (or heard about it). */
  told(m: object): void
  /** Tells the server about every held message it has not heard of for half the ack wait. */
  keep(): void
  start(): void
  stop(): void
}

export function progressAcks(deps: ProgressAcksDeps): ProgressAcks {
  const lastTold = new WeakMap<object, number>()
  let timer: NodeJS.Timeout | undefined
  const keep = () => {
    if (!deps.connected()) return
    const now = deps.now()
    for (const held of deps.held()) {
      for (const m of held) {
        if (now - (lastTold.get(m) ?? 0) < deps.ackWaitMs / 2) continue
        m.working() // a no-op for a message already acked or nak'd
        lastTold.set(m, now)
      }
    }
  }
  return {
    told: (m) => lastTold.set(m, deps.now()),
    keep,
    start: () => {
      clearInterval(timer)
      timer = setInterval(keep, Math.max(deps.ackWaitMs / 4, 100)).unref()
    },
    stop: () => clearInterval(timer)
  }
}
