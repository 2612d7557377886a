import type pg from 'pg'
import { TaskSessionSubjects, type TaskSessionEventData, type TaskSessionStatus, type TaskTypeName } from '@platform/contracts'
import { createEvent, type Envelope } from '@platform/kit'
import {
  SCENARIO,
  collectFacts,
  planChanges,
  type BatchFacts,
  type CreatedFact,
  type Outcome,
  type ReceivedTaskEvent,
  type RemovalReason,
  type SessionChanges,
  type StoredSession,
  type StoredState,
  type TaskEventInput
} from '../domain/lifecycle.js'
import { transaction } from './pg-transaction.js'

/** What applying events changed: sessions created, given a final status, removed. */
export interface Changes {
  created: number
  updated: number
  removed: number
}

/** What the writes use: the pool, the schema (lock keys are per schema), the events' source, the outbox. */
export interface WriteContext {
  pool: pg.Pool
  schema: string
  source: string
  outbox: { kick(): void }
}

type SessionRow = { task_id: string; short_id: string; task_type: TaskTypeName; user_id: string | null; status: TaskSessionStatus }

/** One row of STATE_SQL: a session, a remembered outcome, or a remembered save. */
type StateRow =
  | { kind: 's'; task_id: string; short_id: string; task_type: TaskTypeName; user_id: string | null; value: TaskSessionStatus; at: Date }
  | { kind: 'f'; task_id: string; value: Outcome }
  | { kind: 'v'; short_id: string; at: Date }

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

const lock = (ctx: WriteContext, client: pg.PoolClient, keys: string[]) => client.query(LOCK_SQL, [keys.map((k) => `${ctx.schema}:${k}`)])

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

const receiptKey = (e: { source: string; id: string }) => JSON.stringify([e.source, e.id])

/**
 * Events without `time` get the time their (source, id) was first received. The upsert returns the
 * remembered row when there is one (a concurrent replica's too, once it commits), so every copy of
 * an event, structured or binary, HTTP or NATS, states the same facts.
 */
async function timed(pool: pg.Pool, events: ReceivedTaskEvent[]): Promise<TaskEventInput[]> {
  const untimed = [...new Map(events.filter((e) => e.time === undefined).map((e) => [receiptKey(e), e])).values()]
  const receivedAt = new Map<string, string>()
  if (untimed.length > 0) {
    const { rows } = await pool.query<{ source: string; id: string; received_at: Date }>(
      `INSERT INTO event_receipts (source, id) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT (source, id) DO UPDATE SET received_at = event_receipts.received_at
       RETURNING source, id, received_at`,
      [untimed.map((e) => e.source), untimed.map((e) => e.id)]
    )
    for (const r of rows) receivedAt.set(receiptKey(r), r.received_at.toISOString())
  }
  return events.map((e) => {
    const time = e.time ?? receivedAt.get(receiptKey(e))
    if (time === undefined) throw new Error(`no receipt for event ${e.source} ${e.id}`)
    return { type: e.type, time, data: e.data }
  })
}

/** Applies validated lifecycle events: one batch, one transaction; idempotent and order-independent. */
export async function applyEvents(ctx: WriteContext, received: ReceivedTaskEvent[]): Promise<Changes> {
  const facts = collectFacts(await timed(ctx.pool, received))
  if (facts.lockKeys.length === 0) return { created: 0, updated: 0, removed: 0 }
  const changes = await transaction(ctx.pool, async (client) => {
    await lock(ctx, client, facts.lockKeys)
    await rememberFacts(client, facts)
    const plan = planChanges(facts, await storedState(client, facts))
    const outbox: Envelope[] = []
    const removed = await removeSessions(ctx, client, plan.remove, outbox)
    const created = await insertSessions(ctx, client, plan.insert, outbox)
    const updated = await updateSessions(client, plan.update)
    await writeOutbox(client, outbox)
    return { created, updated, removed }
  })
  if (changes.created + changes.removed > 0) ctx.outbox.kick()
  return changes
}

/** Finished tasks and scenario saves are remembered, so events arriving later or again find them. */
async function rememberFacts(client: pg.PoolClient, facts: BatchFacts): Promise<void> {
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
}

const scenarioCreateShorts = (creates: Iterable<CreatedFact>) => [...creates].filter((c) => c.taskType === SCENARIO).map((c) => c.shortId)

/** What the database holds for the batch's tasks once its facts are remembered. */
async function storedState(client: pg.PoolClient, facts: BatchFacts): Promise<StoredState> {
  // Saved short ids select their scenario sessions; scenario creations need their short id's save time.
  const savedShorts = [...facts.saves.keys()]
  const scenarioShorts = [...new Set([...savedShorts, ...scenarioCreateShorts(facts.creates.values())])]
  const { rows } = await client.query<StateRow>(STATE_SQL, [facts.taskIds, savedShorts, scenarioShorts])
  const state: StoredState = { sessions: new Map(), outcomes: new Map(), savedAt: new Map() }
  for (const r of rows) {
    if (r.kind === 's') {
      const session = { taskId: r.task_id, shortId: r.short_id, taskType: r.task_type, userId: r.user_id, status: r.value, createdAt: r.at }
      state.sessions.set(r.task_id, session)
    } else if (r.kind === 'f') state.outcomes.set(r.task_id, r.value)
    else state.savedAt.set(r.short_id, r.at)
  }
  return state
}

async function removeSessions(ctx: WriteContext, client: pg.PoolClient, remove: SessionChanges['remove'], outbox: Envelope[]): Promise<number> {
  if (remove.size === 0) return 0
  const removed = await client.query<SessionRow>(
    `DELETE FROM task_sessions WHERE task_id = ANY($1::text[])
     RETURNING task_id, short_id, task_type, user_id, status`,
    [[...remove.keys()]]
  )
  for (const r of removed.rows) outbox.push(createEvent(TaskSessionSubjects.removed, ctx.source, eventData(r, remove.get(r.task_id))))
  return removed.rowCount ?? 0
}

async function insertSessions(ctx: WriteContext, client: pg.PoolClient, insert: SessionChanges['insert'], outbox: Envelope[]): Promise<number> {
  if (insert.length === 0) return 0
  const inserted = await client.query<SessionRow>(
    `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
     SELECT t, s, ty, u, st, ca, now()
       FROM unnest($1::text[], $2::text[], $3::"TaskType"[], $4::text[], $5::"TaskSessionStatus"[], $6::timestamptz[])
         AS x(t, s, ty, u, st, ca)
     ON CONFLICT (task_id) DO NOTHING
     RETURNING task_id, short_id, task_type, user_id, status`,
    [
      insert.map((x) => x.taskId),
      insert.map((x) => x.shortId),
      insert.map((x) => x.taskType),
      insert.map((x) => x.userId),
      insert.map((x) => x.status),
      insert.map((x) => x.createdAt)
    ]
  )
  for (const r of inserted.rows) outbox.push(createEvent(TaskSessionSubjects.created, ctx.source, eventData(r)))
  return inserted.rowCount ?? 0
}

async function updateSessions(client: pg.PoolClient, update: SessionChanges['update']): Promise<number> {
  if (update.length === 0) return 0
  const updated = await client.query(
    `UPDATE task_sessions AS s SET status = x.st, updated_at = now()
       FROM unnest($1::text[], $2::"TaskSessionStatus"[]) AS x(t, st)
      WHERE s.task_id = x.t AND s.status <> x.st`,
    [update.map((x) => x.taskId), update.map((x) => x.status)]
  )
  return updated.rowCount ?? 0
}

/** Removes a session by hand when `visible` accepts it; false when there is none (for this caller). */
export async function removeSession(ctx: WriteContext, taskId: string, visible: (s: StoredSession) => boolean): Promise<boolean> {
  const done = await transaction(ctx.pool, async (client) => {
    await lock(ctx, client, [`t:${taskId}`])
    const { rows } = await client.query<SessionRow & { created_at: Date }>(
      'SELECT task_id, short_id, task_type, user_id, status, created_at FROM task_sessions WHERE task_id = $1 FOR UPDATE',
      [taskId]
    )
    const row = rows[0]
    if (!row) return false
    const session = { taskId, shortId: row.short_id, taskType: row.task_type, userId: row.user_id, status: row.status, createdAt: row.created_at }
    if (!visible(session)) return false
    // Remembered like a finished task, so a redelivered tasks.created cannot bring it back.
    await client.query(
      `INSERT INTO finished_tasks (task_id, task_type, outcome) VALUES ($1, $2, 'removed')
       ON CONFLICT (task_id) DO UPDATE SET outcome = 'removed', finished_at = now()`,
      [taskId, row.task_type]
    )
    await client.query('DELETE FROM task_sessions WHERE task_id = $1', [taskId])
    await writeOutbox(client, [createEvent(TaskSessionSubjects.removed, ctx.source, eventData(row, 'deleted'))])
    return true
  })
  if (done) ctx.outbox.kick()
  return done
}
