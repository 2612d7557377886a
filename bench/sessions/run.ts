/**
 * bench/sessions: GET /api/v1/sessions/active (a) on cache hits, (b) against a bare Fastify + JWT + Redis
 * handler (the ceiling), (c) with Redis stopped (the Postgres path), at 10 and 50 connections.
 */
import { join } from 'node:path'
import { TEST_JWT_SECRET, createTestSchema, freePort, startRedisServer, testToken, uniqueName } from '@platform/kit/testing'
import { fmt, load, printTable, type LoadResult } from '../lib/report.js'
import { repoRoot, startNode, stop } from '../lib/processes.js'

const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const schema = await createTestSchema(join(repoRoot, 'services/sessions/prisma/migrations'), 'bench_sessions')
const redis = await startRedisServer()
const token = testToken('bench-user')
const headers = { authorization: `Bearer ${token}` }
const ns = uniqueName('bench')

const servicePort = await freePort()
const service = await startNode(
  'services/sessions/src/server.ts',
  {
    PORT: String(servicePort),
    HOST: '127.0.0.1',
    DATABASE_URL: schema.url,
    DATABASE_SCHEMA: schema.schema,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET
  },
  `http://127.0.0.1:${servicePort}/health`
)
const barePort = await freePort()
const bare = await startNode(
  'bench/sessions/bare-server.ts',
  { PORT: String(barePort), REDIS_URL: redis.url, REDIS_KEY_PREFIX: `${ns}:`, JWT_SECRET: TEST_JWT_SECRET },
  `http://127.0.0.1:${barePort}/health`
)

try {
  const created = await fetch(`http://127.0.0.1:${servicePort}/api/v1/sessions`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'bench' })
  })
  if (created.status !== 201) throw new Error(`could not create the session: ${created.status}`)
  const route = '/api/v1/sessions/active'
  const run = async (port: number, connections: number) => {
    await load({ url: `http://127.0.0.1:${port}${route}`, connections, duration: 1, headers }) // warm-up
    const r = await load({ url: `http://127.0.0.1:${port}${route}`, connections, duration: DURATION, headers })
    if (r.non2xx || r.errors) throw new Error(`port ${port}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    return r
  }
  const results: Record<string, Record<number, LoadResult>> = { a: {}, b: {}, c: {} }
  for (const c of [10, 50]) {
    results.b![c] = await run(barePort, c)
    results.a![c] = await run(servicePort, c)
  }
  await redis.stop()
  const degraded = await fetch(`http://127.0.0.1:${servicePort}${route}`, { headers })
  if (degraded.headers.get('x-degradation-mode') !== 'cache_unavailable') throw new Error('Redis is stopped but the reply is not degraded')
  for (const c of [10, 50]) results.c![c] = await run(servicePort, c)

  const rows = []
  const names = { a: '(a) service, cache hit', b: '(b) bare Fastify+JWT+Redis', c: '(c) service, Redis stopped' }
  for (const c of [10, 50]) {
    for (const k of ['a', 'b', 'c'] as const) {
      const r = results[k]![c]!
      rows.push({
        figure: `${names[k]} @${c}`,
        value: `${fmt(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`,
        target: k === 'a' && c === 10 ? 'p99 ≤ 5 ms' : '',
        ...(k === 'a' && c === 10 ? { met: r.p99 <= 5 } : {})
      })
    }
  }
  for (const c of [10, 50]) {
    const ab = results.a![c]!.rps / results.b![c]!.rps
    const ca = results.c![c]!.rps / results.a![c]!.rps
    rows.push({ figure: `(a)/(b) @${c}`, value: fmt(ab, 2), target: '≥ 0.60', met: ab >= 0.6 })
    rows.push({ figure: `(c)/(a) @${c}`, value: fmt(ca, 2), target: '≥ 0.30', met: ca >= 0.3 })
  }
  printTable('bench/sessions: GET /api/v1/sessions/active', rows)
} finally {
  await stop(service)
  await stop(bare)
  await redis.dispose()
  await schema.drop()
}
