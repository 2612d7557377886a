import t from 'tap'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { migrate } from '../src/index.js'
import { TEST_DATABASE_URL, uniqueName } from '../src/testing/index.js'

async function fixture(t: { teardown(fn: () => unknown): void }, files: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'migrations-'))
  for (const [name, sql] of Object.entries(files)) {
    await mkdir(join(dir, name))
    await writeFile(join(dir, name, 'migration.sql'), sql)
  }
  const schema = uniqueName('mig').toLowerCase()
  const db = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await db.connect()
  t.teardown(async () => {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await db.end()
    await rm(dir, { recursive: true, force: true })
  })
  return { dir, schema, db }
}

t.test('applies pending migrations once, in order, and records them like prisma migrate deploy', async (t) => {
  const { dir, schema, db } = await fixture(t, {
    '20260101000000_a': 'CREATE TABLE things (id int primary key);',
    '20260102000000_b': 'ALTER TABLE things ADD COLUMN name text;'
  })
  t.same(await migrate({ url: TEST_DATABASE_URL, schema, migrationsDir: dir }), ['20260101000000_a', '20260102000000_b'])
  t.same(await migrate({ url: TEST_DATABASE_URL, schema, migrationsDir: dir }), [], 'a second run applies nothing')
  const { rows } = await db.query(
    `SELECT migration_name, length(checksum) AS len, applied_steps_count FROM "${schema}"._prisma_migrations ORDER BY migration_name`
  )
  t.same(rows, [
    { migration_name: '20260101000000_a', len: 64, applied_steps_count: 1 },
    { migration_name: '20260102000000_b', len: 64, applied_steps_count: 1 }
  ])
  const cols = await db.query(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'things' ORDER BY ordinal_position`,
    [schema]
  )
  t.same(
    cols.rows.map((r) => r.column_name),
    ['id', 'name']
  )
})

t.test('two instances migrating at once apply each migration exactly once', async (t) => {
  const { dir, schema, db } = await fixture(t, {
    '20260101000000_a': 'CREATE TABLE counter (n int); INSERT INTO counter VALUES (1);',
    '20260102000000_b': 'UPDATE counter SET n = n + 1;'
  })
  const runs = await Promise.all([1, 2, 3].map(() => migrate({ url: TEST_DATABASE_URL, schema, migrationsDir: dir })))
  t.same(runs.map((r) => r.length).sort(), [0, 0, 2])
  const { rows } = await db.query(`SELECT n FROM "${schema}".counter`)
  t.same(rows, [{ n: 2 }])
})

t.test('a failing migration is rolled back whole and not recorded', async (t) => {
  const { dir, schema, db } = await fixture(t, {
    '20260101000000_a': 'CREATE TABLE ok_table (id int);',
    '20260102000000_bad': 'CREATE TABLE half (id int); SELECT no_such_function();'
  })
  await t.rejects(migrate({ url: TEST_DATABASE_URL, schema, migrationsDir: dir }), { message: /20260102000000_bad failed/ })
  const tables = await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, [schema])
  t.same(
    tables.rows.map((r) => r.table_name),
    ['_prisma_migrations', 'ok_table'],
    'nothing half-written'
  )
  const { rows } = await db.query(`SELECT migration_name FROM "${schema}"._prisma_migrations`)
  t.same(rows, [{ migration_name: '20260101000000_a' }])
})
