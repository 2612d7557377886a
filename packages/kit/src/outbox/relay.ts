import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import type pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import { errorDetail } from '../events/dead-letter.js'
import { qualified } from '../plugins/db.js'
import type { NatsHandle } from '../plugins/nats.js'

export interface OutboxRelayOptions {
  /** Pause between passes while nothing kicks the relay. */
  pollMs: number
  /** Rows per publish-and-mark transaction. */
  batchSize: number
  /** How long sent rows are kept before a pass deletes them. */
  retentionSeconds: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Call after committing a transaction that wrote outbox rows: publishes them now instead of at the next poll. */
    outbox: Pick<OutboxRelay, 'kick' | 'drain'>
  }
}

interface Row {
  seq: string
  id: string
  type: string
  envelope: unknown
}

export interface RelayDeps {
  pool: pg.Pool
  schema: string
  nats: NatsHandle
  batchSize: number
  log: { warn(obj: object, msg: string): void }
  onPublished?: (n: number) => void
}

/**
 * Publishes one batch of unsent events in `seq` order, then marks them sent, inside one transaction
 * holding a per-schema advisory lock: one relay at a time across replicas keeps the order.
 * Returns how many were published, or -1 when publishing failed (NATS down).
 */
export async function relayBatch(deps: RelayDeps): Promise<number> {
  if (!deps.nats.connected) return -1
  const table = qualified(deps.schema, 'outbox')
  const client = await deps.pool.connect()
  try {
    await client.query('BEGIN')
    const lock = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked', [`outbox:${deps.schema}`])
    if (!lock.rows[0]?.locked) {
      await client.query('ROLLBACK')
      return 0
    }
    const { rows } = await client.query<Row>(`SELECT seq, id, type, envelope FROM ${table} WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, [
      deps.batchSize
    ])
    if (rows.length === 0) {
      await client.query('COMMIT')
      return 0
    }
    const js = deps.nats.js()
    // Pipelined on one connection, so the stream receives them in seq order.
    const results = await Promise.allSettled(rows.map((r) => js.publish(deps.nats.subject(r.type), JSON.stringify(r.envelope), { msgID: r.id })))
    let published = 0
    while (published < results.length && results[published]?.status === 'fulfilled') published++
    if (published > 0) {
      await client.query(`UPDATE ${table} SET sent_at = now() WHERE seq = ANY($1::bigint[])`, [rows.slice(0, published).map((r) => r.seq)])
    }
    const failed = results[published]
    if (failed && failed.status === 'rejected') {
      await client.query(`UPDATE ${table} SET attempts = attempts + 1, last_error = $2 WHERE seq = $1`, [
        rows[published]?.seq,
        errorDetail(failed.reason).slice(0, 500)
      ])
    }
    await client.query('COMMIT')
    deps.onPublished?.(published)
    return failed ? -1 : published
  } catch (err) {
    // The error that broke the transaction is the one to report; a failed rollback only means a lost connection.
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/** Relays batches until one comes back short (or `stop()`); throws when publishing failed. */
export async function relayAll(deps: RelayDeps, stop: () => boolean = () => false): Promise<number> {
  let total = 0
  for (;;) {
    const n = await relayBatch(deps)
    if (n < 0) throw new Error('NATS publish failed')
    total += n
    if (n < deps.batchSize || stop()) return total
  }
}

/** Deletes sent rows older than `retentionSeconds`; returns how many. */
export async function purgeSent(pool: pg.Pool, schema: string, retentionSeconds: number): Promise<number> {
  const { rowCount } = await pool.query(`DELETE FROM ${qualified(schema, 'outbox')} WHERE sent_at < now() - make_interval(secs => $1)`, [
    retentionSeconds
  ])
  return rowCount ?? 0
}

/** Rows not sent yet. */
export async function outboxBacklog(pool: pg.Pool, schema: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${qualified(schema, 'outbox')} WHERE sent_at IS NULL`)
  return Number(rows[0]?.n ?? 0)
}

export interface OutboxRelayDeps extends OutboxRelayOptions, RelayDeps {
  log: Pick<FastifyBaseLogger, 'warn'>
  /** The clock that spaces purges a minute apart [Date.now]. */
  now?: () => number
}

/** The relay loop, without Fastify: one pass at a time, on a poll, a kick or a drain. */
export interface OutboxRelay {
  /** Polls every `pollMs` from now on. */
  start(): void
  /** Call after committing a transaction that wrote outbox rows: publishes them now instead of at the next poll. */
  kick(): void
  /** Runs a pass now, or joins the one running: how many rows it published (0 when publishing failed). */
  drain(): Promise<number>
  /** Stops polling, waits for the pass in hand and, when NATS is up, publishes what is committed. */
  stop(): Promise<void>
}

/**
 * The transactional outbox relay: polls, is kicked after commits and after NATS reconnects, backs off
 * while NATS or Postgres is down, and purges sent rows (at most once a minute) after a pass that published.
 */
export function createOutboxRelay(deps: OutboxRelayDeps): OutboxRelay {
  const now = deps.now ?? Date.now
  let closed = false
  let running: Promise<number> | null = null
  let again = false
  let timer: NodeJS.Timeout | undefined
  let failures = 0
  let lastPurge = Number.NEGATIVE_INFINITY

  const publishAll = () => relayAll(deps, () => closed)
  const purgeWhenDue = async () => {
    if (now() - lastPurge < 60_000) return
    lastPurge = now()
    await purgeSent(deps.pool, deps.schema, deps.retentionSeconds)
  }
  const schedule = (ms: number) => {
    clearTimeout(timer)
    if (!closed) timer = setTimeout(() => void run(), ms)
  }
  const pass = async (): Promise<number> => {
    try {
      const n = await publishAll()
      failures = 0
      await purgeWhenDue().catch((err) => deps.log.warn({ err }, 'outbox purge failed; will retry'))
      return n
    } catch (err) {
      failures++
      if (failures === 1 || failures % 20 === 0) deps.log.warn({ err, failures }, 'outbox relay failed; will retry')
      return 0
    } finally {
      running = null
      schedule(again ? 0 : failures > 0 ? Math.min(deps.pollMs * 2 ** failures, 5000) : deps.pollMs)
      again = false
    }
  }
  const run = (): Promise<number> => {
    if (running) {
      again = true
      return running
    }
    running = pass()
    return running
  }

  return {
    start: () => schedule(deps.pollMs),
    kick: () => {
      if (!running) schedule(0)
      else again = true
    },
    drain: run,
    stop: async () => {
      closed = true
      clearTimeout(timer)
      if (running) await running
      if (deps.nats.connected)
        await publishAll().catch((err) => deps.log.warn({ err }, 'outbox drain on close failed; the rows wait for the next start'))
    }
  }
}

/** Wires the relay into the app: `fastify.outbox`, its metrics, a kick on every NATS (re)connect, start and stop. */
export const outboxRelayPlugin = fp<OutboxRelayOptions>(
  async (fastify, opts) => {
    const { pool, schema } = fastify.db
    const published = new Counter({ name: 'outbox_published_total', help: 'Events published from the outbox', registers: [fastify.metrics] })
    new Gauge({
      name: 'outbox_backlog',
      help: 'Events waiting in the outbox',
      registers: [fastify.metrics],
      collect: async function () {
        // A scrape while Postgres is down keeps the last value rather than failing /metrics.
        const n = await outboxBacklog(pool, schema).catch(() => null)
        if (n !== null) this.set(n)
      }
    })
    const relay = createOutboxRelay({ ...opts, pool, schema, nats: fastify.nats, log: fastify.log, onPublished: (n) => published.inc(n) })
    fastify.decorate('outbox', { kick: () => relay.kick(), drain: () => relay.drain() })
    fastify.nats.onConnect(() => relay.kick())
    fastify.addHook('onReady', async () => relay.start())
    // Before NATS drains (onClose of an earlier plugin runs later): publish what is committed.
    fastify.addHook('onClose', () => relay.stop())
  },
  { name: 'platform-outbox', fastify: '5.x', dependencies: ['platform-db', 'platform-nats', 'platform-metrics'] }
)
