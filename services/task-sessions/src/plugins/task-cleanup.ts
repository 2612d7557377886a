import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { TaskSessionCleanupReply } from '@platform/contracts'
import { isDatabaseUnavailable } from '@platform/kit'

/** What cleanup uses: the pool, a logger, how long facts are remembered, how long to pause between batches. */
export interface CleanupContext {
  pool: pg.Pool
  log: FastifyBaseLogger
  finishedRetentionSeconds: number
  cleanupPauseRatio: number
}

/** A run gives up after this many failed batches; the next scheduled run starts over. */
const MAX_FAILED_BATCHES = 3

/** Where the keyset walk over finished sessions stands: the (created_at, id) of the last row deleted. */
interface Position {
  at: Date
  id: string
}

/** Deletes finished sessions older than the cutoff in short batches, then purges old remembered facts. */
export async function cleanup(
  ctx: CleanupContext,
  { olderThanSeconds, batchSize }: { olderThanSeconds: number; batchSize: number }
): Promise<TaskSessionCleanupReply> {
  const started = Date.now()
  const result: TaskSessionCleanupReply = { removed: 0, batches: 0, errors: 0, durationMs: 0, finishedTasksPurged: 0 }
  await deleteFinished(ctx, new Date(started - olderThanSeconds * 1000), batchSize, result)
  try {
    await purgeRemembered(ctx.pool, new Date(started - ctx.finishedRetentionSeconds * 1000), batchSize, result)
  } catch (err) {
    result.errors++
    ctx.log.warn({ err }, 'purging finished tasks failed')
  }
  result.durationMs = Date.now() - started
  return result
}

/**
 * Keyset walk over the partial index of finished sessions: each batch is one short statement (its own
 * transaction) and never rescans what earlier batches deleted. Rows a consumer holds are skipped, not
 * waited for; the next run takes them. Counts into `result`.
 */
async function deleteFinished(ctx: CleanupContext, cutoff: Date, batchSize: number, result: TaskSessionCleanupReply): Promise<void> {
  let after: Position = { at: new Date(0), id: '0' }
  while (result.errors < MAX_FAILED_BATCHES) {
    try {
      const batchStarted = Date.now()
      const rows = await deleteBatch(ctx.pool, cutoff, batchSize, after)
      if (rows.length === 0) return
      result.removed += rows.length
      result.batches++
      after = rows.reduce(furthest, after)
      if (rows.length < batchSize) return
      // Paced: the database spends at most 1/(1 + ratio) of the run deleting, so readers stay fast.
      const pause = (Date.now() - batchStarted) * ctx.cleanupPauseRatio
      if (pause > 0) await sleep(pause)
    } catch (err) {
      if (isDatabaseUnavailable(err) && result.removed === 0) throw err
      result.errors++
      ctx.log.warn({ err, removed: result.removed }, 'cleanup batch failed')
    }
  }
}

/** The later of two positions in (created_at, id) order; the ids are bigints in text. */
function furthest(p: Position, row: { created_at: Date; id: string }): Position {
  const later = row.created_at > p.at || (row.created_at.getTime() === p.at.getTime() && BigInt(row.id) > BigInt(p.id))
  return later ? { at: row.created_at, id: row.id } : p
}

async function deleteBatch(pool: pg.Pool, cutoff: Date, batchSize: number, after: Position) {
  const { rows } = await pool.query<{ created_at: Date; id: string }>(
    `WITH victims AS (
       SELECT id, created_at FROM task_sessions
        WHERE status <> 'active' AND created_at < $1 AND (created_at, id) > ($3, $4::bigint)
        ORDER BY created_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
     DELETE FROM task_sessions AS t USING victims AS v WHERE t.id = v.id
     RETURNING v.created_at, v.id`,
    [cutoff, batchSize, after.at, after.id]
  )
  return rows
}

// Remembered facts past their retention, oldest first; each statement picks at most a batch.
const PURGES = [
  `DELETE FROM finished_tasks WHERE task_id IN (
     SELECT task_id FROM finished_tasks WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  `DELETE FROM scenario_saves WHERE short_id IN (
     SELECT short_id FROM scenario_saves WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  `DELETE FROM event_receipts WHERE (source, id) IN (
     SELECT source, id FROM event_receipts WHERE received_at < $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)`
]

/** Finished task ids, scenario saves and event receipts older than `before`, each table until a batch comes back short. */
async function purgeRemembered(pool: pg.Pool, before: Date, batchSize: number, result: TaskSessionCleanupReply): Promise<void> {
  for (const sql of PURGES) {
    for (;;) {
      const n = (await pool.query(sql, [before, batchSize])).rowCount ?? 0
      result.finishedTasksPurged += n
      if (n < batchSize) break
    }
  }
}
