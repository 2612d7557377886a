import fp from 'fastify-plugin'
import type pg from 'pg'
import { TaskSessionSubjects, type TaskSessionEventData, type TaskSessionStatus, type TaskTypeName } from '@platform/contracts'
import { createEvent, isDatabaseUnavailable, type Envelope } from '@platform/kit'
import {
  SCENARIO,
  collectFacts,
  type CreatedFact,
  planChanges,
  type Outcome,
  type RemovalReason,
  type StoredSession,
  type ReceivedTaskEvent,
  type StoredState,
  type TaskEventInput
} from '../domain/lifecycle.js'

/** What applying events changed: sessions created, given a final status, removed. */
export interface Changes {
  created: number
  updated: number
  removed: number
}

export interface CleanupResult {
  removed: number
  batches: number
  errors: number
  durationMs: number
  finishedTasksPurged: number
}

export interface TaskStore {
  /** Applies validated lifecycle events (one batch, one transaction); idempotent and order-independent. */
  apply(events: ReceivedTaskEvent[]): Promise<Changes>
  /** Removes a session by hand when `visible` accepts it; false when there is none (for this caller). */
  remove(taskId: string, visible: (s: StoredSession) => boolean): Promise<boolean>
  /** Deletes finished sessions older than the cutoff in short batches, then purges old remembered facts. */
  cleanup(opts: { olderThanSeconds: number; batchSize: number }): Promise<CleanupResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    taskStore: TaskStore
  }
}

export interface TaskStoreOptions {
  source: string
  finishedRetentionSeconds: number
  cleanupPauseRatio: number
}

interface StateRow {
  kind: 's' | 'f' | 'v'
  task_id: string | null
  short_id: string | null
  task_type: TaskTypeName | null
  user_id: string | null
  value: string | null
  at: Date | null
}

type SessionRow = { task_id: string; short_id: string; task_type: TaskTypeName; user_id: string | null; status: TaskSessionStatus }

const RETRYABLE = new Set(['40P01', '40001']) // deadlock, serialization failure
const NO_CHANGES: Changes = { created: 0, updated: 0, removed: 0 }

/** Runs `fn` in a transaction; retries deadlocks; a connection that failed is destroyed, not reused. */
export async function transaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect()
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      if (isDatabaseUnavailable(err)) broken = err as Error
      else await client.query('ROLLBACK').catch((e: Error) => (broken = e))
      if (attempt < 4 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue
      throw err
    } finally {
      client.release(broken)
    }
  }
}

// Advisory locks taken in one statement, in the sorted order of their keys: replicas working on the
// same task or short id serialize, and cannot deadlock on each other.
const LOCK_SQL = 'SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest($1::text[]) AS k'

// One round trip for everything the plan needs: sessions, remembered outcomes and saves.
const STATE_SQL = `
  SELECT 's' AS kind, task_id, short_id, task_type, user_id, status::text AS value, created_at AS at
    FROM task_sessions
   WHERE task_id = ANY($1::text[]) OR (short_id = ANY($2::text[]) AND task_type = 'scenario_generation')
  UNION ALL
  SELECT 'f', task_id, NULL, NULL, NULL, outcome::text, NULL FROM finished_tasks WHERE task_id = ANY($1::text[])
  UNION ALL
  SELECT 'v', NULL, short_id, NULL, NULL, NULL, saved_at FROM scenario_saves WHERE short_id = ANY($3::text[])`

function toState(rows: StateRow[]): StoredState {
  const state: StoredState = { sessions: new Map(), outcomes: new Map(), savedAt: new Map() }
  for (const r of rows) {
    if (r.kind === 's') {
      state.sessions.set(r.task_id!, {
        taskId: r.task_id!,
        shortId: r.short_id!,
        taskType: r.task_type!,
        userId: r.user_id,
        status: r.value as TaskSessionStatus,
        createdAt: r.at!
      })
    } else if (r.kind === 'f') state.outcomes.set(r.task_id!, r.value as Outcome)
    else state.savedAt.set(r.short_id!, r.at!)
  }
  return state
}

const scenarioCreateShorts = (creates: Iterable<CreatedFact>) =>
  [...creates].filter((c) => c.taskType === SCENARIO).map((c) => c.shortId)

const eventData = (r: SessionRow, reason?: RemovalReason): TaskSessionEventData => ({
  taskId: r.task_id,
  shortId: r.short_id,
  taskType: r.task_type,
  userId: r.user_id,
  status: r.status,
  ...(reason ? { reason } : {})
})

async function writeOutbox(client: pg.PoolClient, events: Envelope[]): Promise<void> {
  if (events.length === 0) return
  await client.query('INSERT INTO outbox (id, type, envelope) SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[])', [
    events.map((e) => e.id),
    events.map((e) => e.type),
    events.map((e) => JSON.stringify(e))
  ])
}

export const taskStorePlugin = fp<TaskStoreOptions>(
  async (fastify, opts) => {
    const { pool, schema } = fastify.db
    const lock = (client: pg.PoolClient, keys: string[]) => client.query(LOCK_SQL, [keys.map((k) => `${schema}:${k}`)])
    const event = (type: string, data: TaskSessionEventData) => createEvent(type, opts.source, data)

    /**
     * Events without `time` get the time their (source, id) was first received. The upsert returns the
     * remembered row when there is one (a concurrent replica's too, once it commits), so every copy of
     * an event, structured or binary, HTTP or NATS, states the same facts.
     */
    const timed = async (events: ReceivedTaskEvent[]): Promise<TaskEventInput[]> => {
      const untimed = events.filter((e) => e.time === undefined)
      if (untimed.length === 0) return events as TaskEventInput[]
      const keys = new Map(untimed.map((e) => [JSON.stringify([e.source, e.id]), e]))
      const { rows } = await pool.query<{ source: string; id: string; received_at: Date }>(
        `INSERT INTO event_receipts (source, id) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (source, id) DO UPDATE SET received_at = event_receipts.received_at
         RETURNING source, id, received_at`,
        [[...keys.values()].map((e) => e.source), [...keys.values()].map((e) => e.id)]
      )
      const at = new Map(rows.map((r) => [JSON.stringify([r.source, r.id]), r.received_at.toISOString()]))
      return events.map((e) => (e.time === undefined ? { ...e, time: at.get(JSON.stringify([e.source, e.id]))! } : (e as TaskEventInput)))
    }

    const apply = async (received: ReceivedTaskEvent[]): Promise<Changes> => {
      const events = await timed(received)
      const facts = collectFacts(events)
      if (facts.lockKeys.length === 0) return { ...NO_CHANGES }
      const changes = await transaction(pool, async (client) => {
        await lock(client, facts.lockKeys)
        if (facts.finishes.size > 0) {
          const f = [...facts.finishes.values()]
          await client.query(
            `INSERT INTO finished_tasks (task_id, task_type, outcome)
             SELECT * FROM unnest($1::text[], $2::"TaskType"[], $3::"TaskOutcome"[])
             ON CONFLICT (task_id) DO NOTHING`,
            [f.map((x) => x.taskId), f.map((x) => x.taskType), f.map((x) => x.outcome)]
          )
        }
        if (facts.saves.size > 0) {
          await client.query(
            `INSERT INTO scenario_saves (short_id, saved_at) SELECT * FROM unnest($1::text[], $2::timestamptz[])
             ON CONFLICT (short_id) DO UPDATE
               SET saved_at = GREATEST(scenario_saves.saved_at, EXCLUDED.saved_at), recorded_at = now()`,
            [[...facts.saves.keys()], [...facts.saves.values()]]
          )
        }
        // Saved short ids select their scenario sessions; scenario creations need their short id's save time.
        const savedShorts = [...facts.saves.keys()]
        const scenarioShorts = [...new Set([...savedShorts, ...scenarioCreateShorts(facts.creates.values())])]
        const { rows } = await client.query<StateRow>(STATE_SQL, [facts.taskIds, savedShorts, scenarioShorts])
        const state = toState(rows)
        const plan = planChanges(facts, state)
        const outbox: Envelope[] = []
        const result: Changes = { ...NO_CHANGES }

        if (plan.remove.size > 0) {
          const removed = await client.query<SessionRow>(
            `DELETE FROM task_sessions WHERE task_id = ANY($1::text[])
             RETURNING task_id, short_id, task_type, user_id, status`,
            [[...plan.remove.keys()]]
          )
          result.removed = removed.rowCount ?? 0
          for (const r of removed.rows) outbox.push(event(TaskSessionSubjects.removed, eventData(r, plan.remove.get(r.task_id))))
        }
        if (plan.insert.length > 0) {
          const i = plan.insert
          const inserted = await client.query<SessionRow>(
            `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
             SELECT t, s, ty, u, st, ca, now()
               FROM unnest($1::text[], $2::text[], $3::"TaskType"[], $4::text[], $5::"TaskSessionStatus"[], $6::timestamptz[])
                 AS x(t, s, ty, u, st, ca)
             ON CONFLICT (task_id) DO NOTHING
             RETURNING task_id, short_id, task_type, user_id, status`,
            [i.map((x) => x.taskId), i.map((x) => x.shortId), i.map((x) => x.taskType), i.map((x) => x.userId), i.map((x) => x.status), i.map((x) => x.createdAt)]
          )
          result.created = inserted.rowCount ?? 0
          for (const r of inserted.rows) outbox.push(event(TaskSessionSubjects.created, eventData(r)))
        }
        if (plan.update.length > 0) {
          const updated = await client.query(
            `UPDATE task_sessions AS s SET status = x.st, updated_at = now()
               FROM unnest($1::text[], $2::"TaskSessionStatus"[]) AS x(t, st)
              WHERE s.task_id = x.t AND s.status <> x.st`,
            [plan.update.map((x) => x.taskId), plan.update.map((x) => x.status)]
          )
          result.updated = updated.rowCount ?? 0
        }
        await writeOutbox(client, outbox)
        return result
      })
      if (changes.created + changes.removed > 0) fastify.outbox.kick()
      return changes
    }

    const remove = async (taskId: string, visible: (s: StoredSession) => boolean): Promise<boolean> => {
      const done = await transaction(pool, async (client) => {
        await lock(client, [`t:${taskId}`])
        const { rows } = await client.query<SessionRow & { created_at: Date }>(
          'SELECT task_id, short_id, task_type, user_id, status, created_at FROM task_sessions WHERE task_id = $1 FOR UPDATE',
          [taskId]
        )
        const row = rows[0]
        if (!row) return false
        const session: StoredSession = {
          taskId: row.task_id,
          shortId: row.short_id,
          taskType: row.task_type,
          userId: row.user_id,
          status: row.status,
          createdAt: row.created_at
        }
        if (!visible(session)) return false
        // Remembered like a finished task, so a redelivered tasks.created cannot bring it back.
        await client.query(
          `INSERT INTO finished_tasks (task_id, task_type, outcome) VALUES ($1, $2, 'removed')
           ON CONFLICT (task_id) DO UPDATE SET outcome = 'removed', finished_at = now()`,
          [taskId, row.task_type]
        )
        await client.query('DELETE FROM task_sessions WHERE task_id = $1', [taskId])
        await writeOutbox(client, [event(TaskSessionSubjects.removed, eventData(row, 'deleted'))])
        return true
      })
      if (done) fastify.outbox.kick()
      return done
    }

    /** Deletes rows chosen by `select` (ids, oldest first) until a batch comes back short. */
    const purge = async (sql: string, params: unknown[]): Promise<number> => {
      let total = 0
      for (;;) {
        const r = await pool.query(sql, params)
        total += r.rowCount ?? 0
        if ((r.rowCount ?? 0) < (params[1] as number)) return total
      }
    }

    const cleanup = async ({ olderThanSeconds, batchSize }: { olderThanSeconds: number; batchSize: number }): Promise<CleanupResult> => {
      const started = Date.now()
      const result: CleanupResult = { removed: 0, batches: 0, errors: 0, durationMs: 0, finishedTasksPurged: 0 }
      const cutoff = new Date(started - olderThanSeconds * 1000)
      // Keyset walk over the partial index of finished sessions: each batch is one short statement
      // (its own transaction) and never rescans what earlier batches deleted. Rows a consumer holds
      // are skipped, not waited for; the next run takes them.
      let after: { at: Date; id: string } = { at: new Date(0), id: '0' }
      while (result.errors < 3) {
        try {
          const batchStarted = Date.now()
          const r = await pool.query<{ created_at: Date; id: string }>(
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
          const n = r.rowCount ?? 0
          if (n === 0) break
          result.removed += n
          result.batches++
          for (const row of r.rows) {
            if (row.created_at > after.at || (row.created_at.getTime() === after.at.getTime() && BigInt(row.id) > BigInt(after.id))) {
              after = { at: row.created_at, id: row.id }
            }
          }
          if (n < batchSize) break
          // Paced: the database spends at most 1/(1 + ratio) of the run deleting, so readers stay fast.
          const pause = (Date.now() - batchStarted) * opts.cleanupPauseRatio
          if (pause > 0) await new Promise((r) => setTimeout(r, pause))
        } catch (err) {
          if (isDatabaseUnavailable(err) && result.removed === 0) throw err
          result.errors++
          fastify.log.warn({ err, removed: result.removed }, 'cleanup batch failed')
        }
      }
      try {
        const facts = new Date(started - opts.finishedRetentionSeconds * 1000)
        result.finishedTasksPurged += await purge(
          `DELETE FROM finished_tasks WHERE task_id IN (
             SELECT task_id FROM finished_tasks WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
          [facts, batchSize]
        )
        result.finishedTasksPurged += await purge(
          `DELETE FROM scenario_saves WHERE short_id IN (
             SELECT short_id FROM scenario_saves WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
          [facts, batchSize]
        )
        result.finishedTasksPurged += await purge(
          `DELETE FROM event_receipts WHERE (source, id) IN (
             SELECT source, id FROM event_receipts WHERE received_at < $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
          [facts, batchSize]
        )
      } catch (err) {
        result.errors++
        fastify.log.warn({ err }, 'purging finished tasks failed')
      }
      result.durationMs = Date.now() - started
      return result
    }

    fastify.decorate('taskStore', { apply, remove, cleanup })
  },
  { name: 'task-store', dependencies: ['platform-db', 'platform-outbox'] }
)
