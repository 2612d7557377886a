import fp from 'fastify-plugin'
import type pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { TaskSessionCleanupReply } from '@platform/contracts'
import type { ReceivedTaskEvent, StoredSession } from '../domain/lifecycle.js'
import { applyEvents, removeSession, type Changes } from './task-writes.js'
import { cleanup } from './task-cleanup.js'

export type { Changes } from './task-writes.js'

/** The one writer of task sessions: the event consumer, the HTTP intake and deletions all go through it. */
export interface TaskStore {
  /** Applies validated lifecycle events (one batch, one transaction); idempotent and order-independent. */
  apply(events: ReceivedTaskEvent[]): Promise<Changes>
  /** Removes a session by hand when `visible` accepts it; false when there is none (for this caller). */
  remove(taskId: string, visible: (s: StoredSession) => boolean): Promise<boolean>
  /** Deletes finished sessions older than the cutoff in short batches, then purges old remembered facts. */
  cleanup(opts: { olderThanSeconds: number; batchSize: number }): Promise<TaskSessionCleanupReply>
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

/** What the store uses: plain clients, no Fastify. */
export interface TaskStoreDeps {
  pool: pg.Pool
  schema: string
  outbox: { kick(): void }
  log: FastifyBaseLogger
}

export function createTaskStore(deps: TaskStoreDeps, opts: TaskStoreOptions): TaskStore {
  const writes = { pool: deps.pool, schema: deps.schema, source: opts.source, outbox: deps.outbox }
  const cleanups = {
    pool: deps.pool,
    log: deps.log,
    finishedRetentionSeconds: opts.finishedRetentionSeconds,
    cleanupPauseRatio: opts.cleanupPauseRatio
  }
  return {
    apply: (events) => applyEvents(writes, events),
    remove: (taskId, visible) => removeSession(writes, taskId, visible),
    cleanup: (run) => cleanup(cleanups, run)
  }
}

export const taskStorePlugin = fp<TaskStoreOptions>(
  async (fastify, opts) => {
    const { db, outbox, log } = fastify
    fastify.decorate('taskStore', createTaskStore({ pool: db.pool, schema: db.schema, outbox, log }, opts))
  },
  { name: 'task-store', dependencies: ['platform-db', 'platform-outbox'] }
)
