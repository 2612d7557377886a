import fp from 'fastify-plugin'
import pg from 'pg'

export interface DbOptions {
  url: string
  schema: string
  poolSize: number
  timeoutMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The service's pg pool (Prisma's adapter runs on it) and the schema it owns. */
    db: { pool: pg.Pool; schema: string; table(name: string): string }
  }
}

/** Quotes a schema-qualified table name; schema names are validated by config. */
export function qualified(schema: string, table: string): string {
  return `"${schema}"."${table}"`
}

/** A pg pool that fails fast while Postgres is down and reconnects by itself when it returns. */
export function createPool(opts: DbOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.timeoutMs,
    idleTimeoutMillis: 30_000,
    query_timeout: opts.timeoutMs * 5,
    keepAlive: true,
    options: `-c search_path="${opts.schema}"`
  })
  // A client that loses its server emits 'error' (idle ones on the pool, checked-out ones on
  // themselves); without listeners the process would crash. The query in flight still rejects.
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  return pool
}

export const dbPlugin = fp<DbOptions>(
  async (fastify, opts) => {
    const pool = createPool(opts)
    fastify.decorate('db', { pool, schema: opts.schema, table: (name: string) => qualified(opts.schema, name) })
    fastify.readiness.add('postgres', {
      required: true,
      check: async () => {
        await pool.query('SELECT 1')
        return 'up' as const
      }
    })
    fastify.addHook('onClose', async () => {
      await pool.end()
    })
  },
  { name: 'platform-db', fastify: '5.x', dependencies: ['platform-health'] }
)
