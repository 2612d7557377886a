import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import type pg from 'pg'
import type { NatsHandle } from '../plugins/nats.js'

export interface OutboxRelayOptions {
  pollMs: number
  batchSize: number
  retentionSeconds: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Call after committing a transaction that wrote outbox rows: publishes them now instead of at the next poll. */
    outbox: { kick(): void; drain(): Promise<number> }
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
  const table = `"${deps.schema}"."outbox"`
  const client = await deps.pool.connect()
  try {
    await client.query('BEGIN')
    const lock = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked', [
      `outbox:${deps.schema}`
    ])
    if (!lock.rows[0]?.locked) {
      await client.query('ROLLBACK')
      return 0
    }
    const { rows } = await client.query<Row>(
      `SELECT seq, id, type, envelope FROM ${table} WHERE sent_at IS NULL ORDER BY seq LIMIT $1`,
      [deps.batchSize]
    )
    if (rows.length === 0) {
      await client.query('COMMIT')
      return 0
    }
    const js = deps.nats.js()
    // Pipelined on one connection, so the stream receives them in seq order.
    const results = await Promise.allSettled(
      rows.map((r) => js.publish(deps.nats.subject(r.type), JSON.stringify(r.envelope), { msgID: r.id }))
    )
    let published = 0
    while (published < results.length && results[published]?.status === 'fulfilled') published++
    if (published > 0) {
      await client.query(`UPDATE ${table} SET sent_at = now() WHERE seq = ANY($1::bigint[])`, [
        rows.slice(0, published).map((r) => r.seq)
      ])
    }
    const failed = results[published]
    if (failed && failed.status === 'rejected') {
      await client.query(`UPDATE ${table} SET attempts = attempts + 1, last_error = $2 WHERE seq = $1`, [
        rows[published]?.seq,
        String((failed.reason as Error)?.message ?? failed.reason).slice(0, 500)
      ])
    }
    await client.query('COMMIT')
    deps.onPublished?.(published)
    return failed ? -1 : published
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/**
 * The transactional outbox relay: polls, is kicked after commits and after NATS reconnects,
 * backs off while NATS or Postgres is down, and purges sent rows after the retention period.
 */
export const outboxRelayPlugin = fp<OutboxRelayOptions>(
  async (fastify, opts) => {
    const published = new Counter({
      name: 'outbox_published_total',
      help: 'Events published from the outbox',
      registers: [fastify.metrics]
    })
    new Gauge({
      name: 'outbox_backlog',
      help: 'Events waiting in the outbox',
      registers: [fastify.metrics],
      collect: async function () {
        const r = await fastify.db.pool
          .query<{ n: string }>(`SELECT count(*) AS n FROM ${fastify.db.table('outbox')} WHERE sent_at IS NULL`)
          .catch(() => null)
        if (r) this.set(Number(r.rows[0]?.n ?? 0))
      }
    })

    let closed = false
    let running: Promise<number> | null = null
    let again = false
    let timer: NodeJS.Timeout | undefined
    let failures = 0
    let lastPurge = 0

    const deps: RelayDeps = {
      pool: fastify.db.pool,
      schema: fastify.db.schema,
      nats: fastify.nats,
      batchSize: opts.batchSize,
      log: fastify.log,
      onPublished: (n) => published.inc(n)
    }

    const purge = async () => {
      if (Date.now() - lastPurge < 60_000) return
      lastPurge = Date.now()
      await fastify.db.pool.query(
        `DELETE FROM ${fastify.db.table('outbox')} WHERE sent_at < now() - make_interval(secs => $1)`,
        [opts.retentionSeconds]
      )
    }

    const drain = async (): Promise<number> => {
      let total = 0
      for (;;) {
        const n = await relayBatch(deps)
        if (n < 0) throw new Error('NATS publish failed')
        total += n
        if (n < opts.batchSize || closed) return total
      }
    }

    const schedule = (ms: number) => {
      clearTimeout(timer)
      if (!closed) timer = setTimeout(run, ms)
    }

    const run = (): Promise<number> => {
      if (running) {
        again = true
        return running
      }
      running = (async () => {
        try {
          const n = await drain()
          failures = 0
          await purge().catch(() => {})
          return n
        } catch (err) {
          failures++
          if (failures === 1 || failures % 20 === 0) fastify.log.warn({ err, failures }, 'outbox relay failed; will retry')
          return 0
        } finally {
          running = null
          const next = again ? 0 : failures > 0 ? Math.min(opts.pollMs * 2 ** failures, 5000) : opts.pollMs
          again = false
          schedule(next)
        }
      })()
      return running
    }

    fastify.decorate('outbox', {
      kick: () => {
        if (!running) schedule(0)
        else again = true
      },
      drain: () => run()
    })
    fastify.nats.onConnect(() => fastify.outbox.kick())
    fastify.addHook('onReady', async () => schedule(opts.pollMs))
    // Before NATS drains (onClose of an earlier plugin runs later): publish what is committed.
    fastify.addHook('onClose', async () => {
      closed = true
      clearTimeout(timer)
      if (running) await running
      if (fastify.nats.connected) await drain().catch(() => {})
    })
  },
  { name: 'platform-outbox', fastify: '5.x', dependencies: ['platform-db', 'platform-nats', 'platform-metrics'] }
)
