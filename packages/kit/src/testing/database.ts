import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { migrate } from '../db/migrate.js'

/** The shared test server; tests isolate themselves by schema, never by stopping it. */
export const TEST_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/test'

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
}

export interface TestSchema {
  url: string
  schema: string
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>>
  drop(): Promise<void>
}

/** A fresh schema with the service's migrations applied; `drop()` removes it and everything in it. */
export async function createTestSchema(migrationsDir: string, prefix = 't', url = TEST_DATABASE_URL): Promise<TestSchema> {
  const schema = uniqueName(prefix).toLowerCase()
  await migrate({ url, schema, migrationsDir })
  const pool = new pg.Pool({ connectionString: url, max: 2, options: `-c search_path="${schema}"` })
  return {
    url,
    schema,
    query: (sql, params) => pool.query(sql, params as unknown[]),
    drop: async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await pool.end()
    }
  }
}

/** Removes every Redis key under a test's prefix. */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis')
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

/** How the schema's `_prisma_migrations` records each applied migration: [name, checksum, finished, steps]. */
export async function recordedMigrations(schema: TestSchema): Promise<Array<[string, string, boolean, number]>> {
  const { rows } = await schema.query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }>(
    'SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name'
  )
  return rows.map((r) => [r.migration_name, r.checksum, r.finished_at !== null, r.applied_steps_count])
}

/** What `prisma migrate deploy` would have recorded for the files in `migrationsDir`. */
export async function expectedMigrations(migrationsDir: string): Promise<Array<[string, string, boolean, number]>> {
  const { readMigrations } = await import('../db/migrate.js')
  return (await readMigrations(migrationsDir)).map((m) => [m.name, m.checksum, true, 1])
}

/** Every column of the schema's tables as "table.column type[ null]" (enums by name), in table and column order. */
export async function describeColumns(schema: TestSchema): Promise<string[]> {
  const { rows } = await schema.query<{ c: string }>(
    `SELECT table_name || '.' || column_name || ' ' || CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END
              || CASE WHEN is_nullable = 'YES' THEN ' null' ELSE '' END AS c
       FROM information_schema.columns
      WHERE table_schema = $1 AND table_name <> '_prisma_migrations' ORDER BY table_name, ordinal_position`,
    [schema.schema]
  )
  return rows.map((r) => r.c)
}

/**
 * A service's own Prisma client on a test schema (`create` builds it from the adapter). The adapter
 * owns its small pool, so `$disconnect()` releases everything.
 */
export async function prismaOnSchema<C>(schema: TestSchema, create: (adapter: import('@prisma/adapter-pg').PrismaPg) => C): Promise<C> {
  const { PrismaPg } = await import('@prisma/adapter-pg')
  return create(new PrismaPg({ connectionString: schema.url, max: 2 }, { schema: schema.schema }))
}
