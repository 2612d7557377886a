import { Counter, Gauge, type Registry } from 'prom-client'
import type { DeadLetterReason } from './dead-letter.js'

export interface ConsumerStats {
  processed: number
  failed: number
  deadLettered: number
}

/** One consumer's counts, kept in `stats` and in the app's Prometheus registry alike. */
export interface ConsumerTally {
  readonly stats: ConsumerStats
  processed(n: number): void
  failed(n: number): void
  deadLettered(reason: DeadLetterReason): void
  paused(value: boolean): void
}

/** Several consumers in one app share each metric, told apart by the `consumer` label. */
function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter<string> {
  const existing = registry.getSingleMetric(name)
  return existing instanceof Counter ? existing : new Counter({ name, help, labelNames, registers: [registry] })
}

function gauge(registry: Registry, name: string, help: string, labelNames: string[]): Gauge<string> {
  const existing = registry.getSingleMetric(name)
  return existing instanceof Gauge ? existing : new Gauge({ name, help, labelNames, registers: [registry] })
}

export function consumerTally(registry: Registry, consumer: string): ConsumerTally {
  const processed = counter(registry, 'event_consumer_processed_total', 'Events handled and acked', ['consumer'])
  const failed = counter(registry, 'event_consumer_failed_total', 'Handler failures (the event is redelivered with backoff)', ['consumer'])
  const deadLettered = counter(registry, 'event_consumer_dead_lettered_total', 'Events sent to the dead-letter subject', ['consumer', 'reason'])
  const paused = gauge(registry, 'event_consumer_paused', '1 while paused by a database outage', ['consumer'])
  const labels = { consumer }
  const stats: ConsumerStats = { processed: 0, failed: 0, deadLettered: 0 }
  return {
    stats,
    processed: (n) => {
      stats.processed += n
      processed.inc(labels, n)
    },
    failed: (n) => {
      stats.failed += n
      failed.inc(labels, n)
    },
    deadLettered: (reason) => {
      stats.deadLettered++
      deadLettered.inc({ ...labels, reason })
    },
    paused: (value) => paused.set(labels, value ? 1 : 0)
  }
}
