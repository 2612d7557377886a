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
