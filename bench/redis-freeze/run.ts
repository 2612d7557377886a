/**
 * bench/redis-freeze: two sessions replicas behind the gateway share a redis-server of their own; steady
 * load (BENCH_RATE requests/s over BENCH_CONNECTIONS connections) reads GET /api/v1/sessions/active through the gateway while that Redis is frozen (SIGSTOP: it
 * accepts connections and never answers), then thawed (SIGCONT). Prints the route's p99 during the freeze
 * once its first second is over (each replica pays a few command timeouts, then bypasses Redis), the
 * replicas' readiness mid-freeze, and how long after SIGCONT the reads hit the cache again (no more
 * X-Degradation-Mode). The gateway keeps its own Redis: only the sessions' cache is frozen.
 */
import type { ChildProcess } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  freePort,
  startRedisServer,
  testToken,
  uniqueName
} from '@platform/kit/testing'
import { fmt, printTable } from '../lib/report.js'
import { repoRoot, startNode, stop } from '../lib/processes.js'

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10)
/** A steady rate well under what the stack serves on a busy 2-core machine: latency, not queueing, is measured. */
const RATE = Number(process.env.BENCH_RATE ?? 400)
const STEADY_SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 4)
const FREEZE_SECONDS = Number(process.env.BENCH_FREEZE_SECONDS ?? 8)
const AFTER_SECONDS = Number(process.env.BENCH_AFTER_SECONDS ?? 6)
const ROUTE = '/api/v1/sessions/active'
const SHARED_REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
const headers = { authorization: `Bearer ${testToken('freeze-bench-user')}` }

interface Sample {
  /** performance.now() when the request was sent and when its reply completed, in ms. */
  start: number
  end: number
  status: number
  degraded: boolean
}

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const schema = await createTestSchema(join(repoRoot, 'services/sessions/prisma/migrations'), 'bench_freeze')
const redis = await startRedisServer()
const ns = uniqueName('benchfz')
const dead = `http://127.0.0.1:${await freePort()}`
const ports = { s1: await freePort(), s2: await freePort(), gateway: await freePort() }
const children: ChildProcess[] = []

try {
  for (const port of [ports.s1, ports.s2]) {
    children.push(
      await startNode(
        'services/sessions/src/server.ts',
        {
          PORT: String(port),
          HOST: '127.0.0.1',
          DATABASE_URL: schema.url,
          DATABASE_SCHEMA: schema.schema,
          DATABASE_POOL_SIZE: '4',
          REDIS_URL: redis.url,
          REDIS_KEY_PREFIX: `${ns}:s:`,
          NATS_URL,
          NATS_NAMESPACE: ns,
          JWT_SECRET: TEST_JWT_SECRET
        },
        `http://127.0.0.1:${port}/health`
      )
    )
  }
  const sessions = [ports.s1, ports.s2].map((p) => `http://127.0.0.1:${p}`)
  children.push(
    await startNode(
      'services/gateway/src/server.ts',
      {
        PORT: String(ports.gateway),
        HOST: '127.0.0.1',
        SESSIONS_URLS: sessions.join(','),
        TASK_SESSIONS_URLS: dead,
        CHAT_URLS: dead,
        CLEANUP_WORKER_URLS: dead,
        REDIS_URL: SHARED_REDIS,
        REDIS_KEY_PREFIX: `${ns}:g:`,
        NATS_URL,
        NATS_NAMESPACE: ns,
        JWT_SECRET: TEST_JWT_SECRET,
        RATE_LIMIT_AUTHENTICATED: '1000000000'
      },
      `http://127.0.0.1:${ports.gateway}/ready`
    )
  )
  const gateway = `http://127.0.0.1:${ports.gateway}`
  const created = await fetch(`${gateway}/api/v1/sessions`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'bench' })
  })
  if (created.status !== 201) throw new Error(`could not create the session: ${created.status}`)
  await autocannon({ url: `${gateway}${ROUTE}`, connections: CONNECTIONS, duration: 2, headers }) // warm-up

  const samples: Sample[] = []
  let lastDegraded = false
  let finish: (result: autocannon.Result) => void = () => {}
  let fail: (err: Error) => void = () => {}
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve
    fail = reject
  })
  const instance = autocannon(
    {
      url: gateway,
      connections: CONNECTIONS,
      overallRate: RATE,
      duration: STEADY_SECONDS + FREEZE_SECONDS + AFTER_SECONDS,
      requests: [
        {
          method: 'GET',
          path: ROUTE,
          headers,
          // Called with the reply's headers just before the 'response' event of the same reply.
          onResponse: (_status, _body, _context, replyHeaders) => {
            lastDegraded = Object.keys(replyHeaders ?? {}).some((h) => h.toLowerCase() === 'x-degradation-mode')
          }
        }
      ]
    },
    (err: Error | null, result) => (err ? fail(err) : finish(result))
  )
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    const end = performance.now()
    samples.push({ start: end - responseTime, end, status, degraded: lastDegraded })
  })

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  await sleep(STEADY_SECONDS * 1000)
  const frozenAt = performance.now()
  redis.freeze()
  await sleep(2000)
  // Mid-freeze, each replica says what it sees.
  const states = await Promise.all(
    sessions.map(async (url) => {
      const ready = (await (await fetch(`${url}/ready`)).json()) as { checks: Record<string, string> }
      const health = (await (await fetch(`${url}/health`)).json()) as { status: string }
      return { redis: ready.checks.redis, health: health.status }
    })
  )
  await sleep(FREEZE_SECONDS * 1000 - 2000)
  const thawedAt = performance.now()
  redis.thaw()
  const result = await finished

  const within = (from: number, to: number) => samples.filter((s) => s.start >= from && s.end <= to)
  const steady = within(1000 + samples[0]!.start, frozenAt)
  const firstSecond = samples.filter((s) => s.end >= frozenAt && s.start < frozenAt + 1000)
  const frozen = within(frozenAt + 1000, thawedAt)
  const failed = (list: Sample[]) => list.filter((s) => s.status !== 200).length
  const afterThaw = samples.filter((s) => s.start >= thawedAt)
  const lastDegradedAfter = afterThaw.filter((s) => s.degraded).at(-1)
  const recoveryMs = lastDegradedAfter ? lastDegradedAfter.start - thawedAt : 0
  const p99Frozen = percentile(
    frozen.map((s) => s.end - s.start),
    99
  )
  const p50Frozen = percentile(
    frozen.map((s) => s.end - s.start),
    50
  )
  const p99Steady = percentile(
    steady.map((s) => s.end - s.start),
    99
  )
  const ms = (n: number) => `${fmt(n, 1)} ms`

  printTable('bench/redis-freeze: GET /api/v1/sessions/active through the gateway, 2 sessions replicas, their Redis frozen', [
    {
      figure: `steady, Redis answering (${fmt(steady.length)} replies)`,
      value: `p50 ${ms(
        percentile(
          steady.map((s) => s.end - s.start),
          50
        )
      )}, p99 ${ms(p99Steady)}`,
      target: ''
    },
    {
      figure: 'first second of the freeze: slowest reply',
      value: ms(Math.max(...firstSecond.map((s) => s.end - s.start))),
      target: 'a few command timeouts (500 ms)'
    },
    {
      figure: `freeze after its first second: p99 (${fmt(frozen.length)} replies)`,
      value: `${ms(p99Frozen)} (p50 ${ms(p50Frozen)})`,
      target: 'p99 ≤ 50 ms',
      met: p99Frozen <= 50
    },
    {
      figure: 'freeze p99 ÷ steady p99 (the Postgres path against the cache, on this machine now)',
      value: fmt(p99Frozen / p99Steady, 2),
      target: ''
    },
    {
      figure: 'freeze after its first second: replies with X-Degradation-Mode',
      value: `${fmt((100 * frozen.filter((s) => s.degraded).length) / Math.max(1, frozen.length), 1)} %`,
      target: '100 %',
      met: frozen.length > 0 && frozen.every((s) => s.degraded)
    },
    {
      figure: 'non-200 replies during the freeze',
      value: fmt(failed(samples.filter((s) => s.end >= frozenAt && s.start < thawedAt))),
      target: '0',
      met: failed(samples.filter((s) => s.end >= frozenAt && s.start < thawedAt)) === 0
    },
    {
      figure: 'replicas mid-freeze: /ready redis, /health status',
      value: states.map((s) => `${s.redis}/${s.health}`).join(', '),
      target: 'down/degraded each',
      met: states.every((s) => s.redis === 'down' && s.health === 'degraded')
    },
    { figure: 'recovery: SIGCONT → last degraded read', value: ms(recoveryMs), target: '≤ 2,000 ms', met: recoveryMs <= 2000 },
    {
      figure: `after recovery: replies from the cache (${fmt(afterThaw.length)} replies after SIGCONT)`,
      value: `${fmt(afterThaw.filter((s) => !s.degraded).length)} cache, ${fmt(afterThaw.filter((s) => s.degraded).length)} degraded`,
      target: ''
    },
    { figure: 'machine load (1-minute average) at the end', value: fmt(loadavg()[0]!, 2), target: '' },
    {
      figure: 'whole run',
      value: `${fmt(result.requests.total)} requests, ${fmt(result.errors)} errors, ${fmt(result.non2xx)} non-2xx`,
      target: '0 errors, 0 non-2xx',
      met: result.errors === 0 && result.non2xx === 0
    }
  ])
} finally {
  try {
    redis.thaw()
  } catch {
    // not running any more
  }
  for (const child of children) await stop(child)
  await redis.dispose()
  await schema.drop()
  // Best effort: what is left of a run's own prefix or namespace harms nothing.
  await deleteRedisKeys(SHARED_REDIS, `${ns}:`).catch(() => undefined)
  await deleteStreams(NATS_URL, ns).catch(() => undefined)
}
