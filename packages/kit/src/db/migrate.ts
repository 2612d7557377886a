import { createHash, randomUUID } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'

export interface MigrateOptions {
  url: string
  schema: string
  migrationsDir: string
  log?: (msg: string) => void
}

/** Prisma's own bookkeeping table, so `prisma migrate deploy` elsewhere sees these as applied. */
const PRISMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`

export interface Migration {
  name: string
  sql: string
  checksum: string
}

export async function readMigrations(dir: string): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name, 'migration.sql'), 'utf8')
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') }
    })
  )
}

/** Creates the database named in the URL when it does not exist yet (local start only). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url)
  const name = decodeURIComponent(target.pathname.slice(1))
  if (!name) return
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const client = new pg.Client({ connectionString: admin.toString() })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (!rowCount) {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err // created meanwhile by another starter
      })
    }
  } finally {
    await client.end()
  }
}

/**
 * Applies pending migrations into one schema, each in its own transaction, under a per-schema
 * advisory lock so that two instances starting at once apply each migration exactly once.
 * Refuses to run when an applied migration's file has changed or a previous attempt failed.
 */
export async function migrate(opts: MigrateOptions): Promise<string[]> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) throw new Error(`invalid schema name "${opts.schema}"`)
  const log = opts.log ?? (() => {})
  const migrations = await readMigrations(opts.migrationsDir)
  const client = new pg.Client({ connectionString: opts.url })
  await client.connect()
  const applied: string[] = []
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`migrate:${opts.schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${opts.schema}"`)
    await client.query(`SET search_path TO "${opts.schema}"`)
    await client.query(PRISMA_MIGRATIONS_DDL)
    const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"'
    )
    const done = new Map(rows.filter((r) => r.rolled_back_at === null).map((r) => [r.migration_name, r]))
    for (const m of migrations) {
      const row = done.get(m.name)
      if (row?.finished_at === null) {
        throw new Error(`migration ${m.name} failed earlier in schema ${opts.schema}; resolve it before migrating again`)
      }
      if (row) {
        if (row.checksum !== m.checksum) log(`warning: migration ${m.name} was modified after it was applied`)
        continue
      }
      await client.query('BEGIN')
      try {
        await client.query(m.sql)
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [randomUUID(), m.checksum, m.name]
        )
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK')
        throw new Error(`migration ${m.name} failed in schema ${opts.schema}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      }
      applied.push(m.name)
      log(`applied ${m.name} to schema ${opts.schema}`)
    }
  } finally {
    // Ending the session releases its locks anyway; this only frees them sooner.
    await client.query('SELECT pg_advisory_unlock_all()').catch(() => undefined)
    await client.end()
  }
  return applied
}
