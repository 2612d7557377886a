import type { FastifyBaseLogger } from 'fastify'
import type { CleanupReply } from '@platform/contracts'

/** A run gives up after this many failed batches; the next scheduled run starts over. */
const MAX_FAILED_BATCHES = 3

/**
 * Runs `batch` (one transaction that ends or deletes at most `batchSize` rows and says how many) until a
 * batch comes back short or three have failed, and logs the run with the fields the dashboards read.
 */
export async function inBatches(
  log: Pick<FastifyBaseLogger, 'error' | 'info'>,
  what: string,
  batchSize: number,
  batch: () => Promise<number>
): Promise<CleanupReply> {
  const started = Date.now()
  let removed = 0
  let batches = 0
  let errors = 0
  while (errors < MAX_FAILED_BATCHES) {
    let n: number
    try {
      n = await batch()
    } catch (err) {
      errors++
      log.error({ err, batches }, `${what} cleanup batch failed`)
      continue
    }
    if (n) batches++
    removed += n
    if (n < batchSize) break
  }
  const durationMs = Date.now() - started
  log.info({ cleanup_count: removed, duration_ms: durationMs, errors_encountered: errors }, `${what} cleanup finished`)
  return { removed, batches, errors, durationMs }
}
