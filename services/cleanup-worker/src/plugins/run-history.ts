import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import { Value } from 'typebox/value'
import {
  CleanupRun as CleanupRunSchema,
  CleanupSubjects,
  type CleanupJobData,
  type CleanupKind,
  type CleanupRun as CleanupRunDto,
  type CleanupRunCompletedData,
  type CleanupRunList,
  type CleanupRunStatus,
  type CleanupTrigger
} from '@platform/contracts'
import { createEvent, keyset, keysetPage, outboxRow } from '@platform/kit'
import { Prisma, type CleanupRun, type PrismaClient } from '../generated/prisma/client.js'
import { byKind } from '../domain/kinds.js'

export interface StartedRun {
  id: string
  startedAt: Date
  attempts: number
}

export interface RunEnd {
  status: 'succeeded' | 'retrying' | 'failed'
  removed: number
  errors: number
  error: string | null
  details: Record<string, number> | null
}

export interface KindSummary {
  /** Finished runs (succeeded or failed). */
  runs: number
  failed: number
  lastSuccessAt: Date | null
}

export interface ListFilter {
  kind?: CleanupKind | undefined
  status?: CleanupRunStatus | undefined
  trigger?: CleanupTrigger | undefined
  limit: number
  cursor?: string | undefined
}

export interface RunHistory {
  /** Records a manual run before its job is queued, so its id can be answered at once. */
  queue(input: { id: string; kind: CleanupKind; olderThanSeconds?: number | undefined }): Promise<CleanupRunDto>
  /** Forgets a queued run whose job could not be queued. */
  discard(id: string): Promise<void>
  /** Marks a job's run as running: creates it (scheduled) or counts one more attempt (retry, crash recovery). */
  begin(jobId: string, data: CleanupJobData): Promise<StartedRun>
  /** Records an attempt's end; a final one (succeeded or failed) writes cleanup.run.completed in the same transaction. */
  finish(run: StartedRun, data: CleanupJobData, end: RunEnd): Promise<void>
  get(id: string): Promise<CleanupRunDto | null>
  list(filter: ListFilter): Promise<CleanupRunList>
  /** Per kind: finished runs, failed runs and the last success. */
  summary(): Promise<Record<CleanupKind, KindSummary>>
  /** When each kind last succeeded (an index-only look per kind: cheap enough for /health). */
  lastSuccess(): Promise<Record<CleanupKind, Date | null>>
  /** Deletes finished runs older than the retention, at most `limit` of them. */
  purge(olderThanDays: number, limit: number): Promise<number>
}

declare module 'fastify' {
  interface FastifyInstance {
    runHistory: RunHistory
  }
}

const RunDetails = CleanupRunSchema.properties.details

export function toDto(r: CleanupRun): CleanupRunDto {
  return {
    id: r.id,
    kind: r.kind,
    trigger: r.trigger,
    status: r.status,
    olderThanSeconds: r.olderThanSeconds,
    createdAt: r.createdAt.toISOString(),
    startedAt: r.startedAt?.toISOString() ?? null,
    finishedAt: r.finishedAt?.toISOString() ?? null,
    removed: r.removed,
    errors: r.errors,
    attempts: r.attempts,
    error: r.error,
    // Written only by `finish` from a checked reply; anything else in the column is not shown.
    details: Value.Check(RunDetails, r.details) ? r.details : null
  }
}

/** One statement, so a replica recovering a stalled job and a late original cannot both create the run. */
async function beginRun(prisma: PrismaClient, jobId: string, data: CleanupJobData): Promise<StartedRun> {
  const rows = await prisma.$queryRaw<Array<{ id: string; started_at: Date; attempts: number }>>`
    INSERT INTO cleanup_runs (id, job_id, kind, trigger, status, older_than_seconds, started_at, attempts)
    VALUES (${data.runId ?? randomUUID()}::uuid, ${jobId}, ${data.kind}::"CleanupKind", ${data.trigger}::"CleanupTrigger",
            'running', ${data.olderThanSeconds ?? null}::int, now(), 1)
    ON CONFLICT (job_id) DO UPDATE
       SET status = 'running', attempts = cleanup_runs.attempts + 1, finished_at = NULL,
           started_at = COALESCE(cleanup_runs.started_at, EXCLUDED.started_at)
    RETURNING id, started_at, attempts`
  const row = rows[0]
  if (!row) throw new Error(`recording the start of job ${jobId} returned no row`)
  return { id: row.id, startedAt: row.started_at, attempts: row.attempts }
}

/** Records an attempt's end and, for a final one, its cleanup.run.completed event in the same transaction. */
async function finishRun(prisma: PrismaClient, source: string, run: StartedRun, data: CleanupJobData, end: RunEnd): Promise<void> {
  const finishedAt = new Date()
  await prisma.$transaction(async (tx) => {
    // Added, not set: an attempt that runs again after a recorded success (a crash before BullMQ
    // heard of it) must not hide what the first one removed.
    const row = await tx.cleanupRun.update({
      where: { id: run.id },
      data: {
        status: end.status,
        finishedAt: end.status === 'retrying' ? null : finishedAt,
        removed: { increment: end.removed },
        errors: { increment: end.errors },
        error: end.error,
        details: end.details ?? Prisma.DbNull
      }
    })
    if (end.status === 'retrying') return
    const event: CleanupRunCompletedData = {
      runId: run.id,
      kind: data.kind,
      trigger: data.trigger,
      status: end.status,
      startedAt: run.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: Math.max(0, finishedAt.getTime() - run.startedAt.getTime()),
      removed: row.removed,
      errors: row.errors,
      attempts: run.attempts,
      error: end.error
    }
    await tx.outboxEvent.create({ data: outboxRow(createEvent(CleanupSubjects.runCompleted, source, event)) })
  })
}

/** Newest first, keyset-paged over (createdAt, id). */
async function listRuns(prisma: PrismaClient, { kind, status, trigger, limit, cursor }: ListFilter): Promise<CleanupRunList> {
  const next = keyset(cursor, limit, 'desc')
  const rows = await prisma.cleanupRun.findMany({
    where: { ...(kind ? { kind } : {}), ...(status ? { status } : {}), ...(trigger ? { trigger } : {}), ...next.where },
    orderBy: next.orderBy,
    take: next.take
  })
  const { page, nextCursor } = keysetPage(rows, limit)
  return { runs: page.map(toDto), nextCursor }
}

async function summarizeRuns(prisma: PrismaClient): Promise<Record<CleanupKind, KindSummary>> {
  const rows = await prisma.$queryRaw<Array<{ kind: CleanupKind; runs: bigint; failed: bigint; last_success: Date | null }>>`
    SELECT kind::text AS kind,
           count(*) FILTER (WHERE status IN ('succeeded', 'failed')) AS runs,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success
      FROM cleanup_runs GROUP BY kind`
  const out = byKind<KindSummary>(() => ({ runs: 0, failed: 0, lastSuccessAt: null }))
  for (const r of rows) out[r.kind] = { runs: Number(r.runs), failed: Number(r.failed), lastSuccessAt: r.last_success }
  return out
}

async function lastSuccesses(prisma: PrismaClient): Promise<Record<CleanupKind, Date | null>> {
  const rows = await prisma.$queryRaw<Array<{ kind: CleanupKind; at: Date | null }>>`
    SELECT k.kind::text AS kind,
           (SELECT max(finished_at) FROM cleanup_runs r WHERE r.kind = k.kind AND r.status = 'succeeded') AS at
      FROM unnest(enum_range(NULL::"CleanupKind")) AS k(kind)`
  const out = byKind<Date | null>(() => null)
  for (const r of rows) out[r.kind] = r.at
  return out
}

export interface RunHistoryDeps {
  prisma: PrismaClient
  /** The CloudEvents `source` of cleanup.run.completed. */
  source: string
  /** Called after a final outcome is committed: the relay publishes its event now. */
  published: () => void
}

/** The run history in Postgres (cleanup_runs), shared by every replica. */
export function createRunHistory({ prisma, source, published }: RunHistoryDeps): RunHistory {
  return {
    async queue({ id, kind, olderThanSeconds }) {
      const row = await prisma.cleanupRun.create({
        data: { id, jobId: id, kind, trigger: 'manual', status: 'queued', olderThanSeconds: olderThanSeconds ?? null }
      })
      return toDto(row)
    },
    async discard(id) {
      await prisma.cleanupRun.deleteMany({ where: { id, status: 'queued' } })
    },
    begin: (jobId, data) => beginRun(prisma, jobId, data),
    async finish(run, data, end) {
      await finishRun(prisma, source, run, data, end)
      if (end.status !== 'retrying') published()
    },
    async get(id) {
      const row = await prisma.cleanupRun.findUnique({ where: { id } })
      return row ? toDto(row) : null
    },
    list: (filter) => listRuns(prisma, filter),
    summary: () => summarizeRuns(prisma),
    lastSuccess: () => lastSuccesses(prisma),
    purge: (olderThanDays, limit) => prisma.$executeRaw`
      DELETE FROM cleanup_runs WHERE id IN (
        SELECT id FROM cleanup_runs
         WHERE status IN ('succeeded', 'failed') AND created_at < now() - make_interval(secs => ${olderThanDays * 86400})
         ORDER BY created_at LIMIT ${limit})`
  }
}

export const runHistoryPlugin = fp<{ source: string }>(
  async (fastify, { source }) => {
    fastify.decorate('runHistory', createRunHistory({ prisma: fastify.prisma, source, published: () => fastify.outbox.kick() }))
  },
  { name: 'run-history', dependencies: ['prisma', 'platform-outbox'] }
)
