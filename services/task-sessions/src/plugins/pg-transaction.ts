import type pg from 'pg'
import { isDatabaseUnavailable } from '@platform/kit'

const RETRYABLE = new Set(['40P01', '40001']) // deadlock, serialization failure
const ATTEMPTS = 4

/** The SQLSTATE of a pg error, if it is one. */
const sqlState = (err: unknown): string | undefined => (err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined)

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
      if (isDatabaseUnavailable(err)) broken = err instanceof Error ? err : new Error(String(err))
      else await client.query('ROLLBACK').catch((e: Error) => (broken = e))
      if (attempt < ATTEMPTS && RETRYABLE.has(sqlState(err) ?? '')) continue
      throw err
    } finally {
      client.release(broken)
    }
  }
}
