/**
 * What bench/gateway's scripts share: the sessions service behind every proxy (its own schema and Redis),
 * the proxies themselves, each its own process, and the CPU time a process spends per request at a fixed rate.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TEST_JWT_SECRET, createTestSchema, freePort, startRedisServer, testToken, uniqueName, waitFor } from '@platform/kit/testing'
import autocannon from 'autocannon'
import { repoRoot, startNode, stop } from '../lib/processes.js'

export const ROUTE = '/api/v1/sessions/active'
export const userHeaders = { authorization: `Bearer ${testToken('bench-user')}` }
/** The same user through a login session, so the guard runs its checks on every request. */
export const guardHeaders = {
  authorization: `Bearer ${testToken('bench-user', ['user'], { sid: 'bench-sid' })}`,
  'user-agent': 'autocannon'
}

/** gateway: every policy, guard off; guard: the same with the login guard; bare: @fastify/http-proxy; minimal: Fastify + undici. */
export type Kind = 'gateway' | 'guard' | 'bare' | 'minimal'

/** A process under load: a proxy, or the sessions service itself. */
export interface Target {
  name: string
  port: number
  pid: number
  url: string
  headers: Record<string, string>
}

export interface Backend {
  /** The sessions service's base URL. */
  upstream: string
  /** The sessions service under load itself (a). */
  direct: Target
  redisUrl: string
  /** A port nothing listens on, for the services a proxy is never sent to. */
  dead: string
  ns: string
  children: ChildProcess[]
  dispose(): Promise<void>
}

/** Redis, a schema and the sessions service with one session of `bench-user`'s, torn down by `dispose`. */
export async function startBackend(prefix: string): Promise<Backend> {
  const schema = await createTestSchema(join(repoRoot, 'services/sessions/prisma/migrations'), prefix)
  const redis = await startRedisServer()
  const ns = uniqueName(prefix.replace(/_/g, ''))
  const children: ChildProcess[] = []
  const dispose = async () => {
    for (const child of children.reverse()) await stop(child)
    await redis.dispose()
    await schema.drop()
  }
  try {
    const port = await freePort()
    const upstream = `http://127.0.0.1:${port}`
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: schema.url,
      DATABASE_SCHEMA: schema.schema,
      DATABASE_POOL_SIZE: '4',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: `${ns}:s:`,
      NATS_NAMESPACE: ns,
      JWT_SECRET: TEST_JWT_SECRET
    }
    const sessions = await startNode('services/sessions/src/server.ts', env, `${upstream}/health`)
    children.push(sessions)
    const direct = { name: 'sessions', port, pid: sessions.pid ?? 0, url: `${upstream}${ROUTE}`, headers: userHeaders }
    const created = await fetch(`${upstream}/api/v1/sessions`, {
      method: 'POST',
      headers: { ...userHeaders, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'bench' })
    })
    if (created.status !== 201) throw new Error(`could not create the session: ${created.status}`)
    return { upstream, direct, redisUrl: redis.url, dead: `http://127.0.0.1:${await freePort()}`, ns, children, dispose }
  } catch (err) {
    await dispose()
    throw err
  }
}

const ENTRIES: Record<Kind, string> = {
  gateway: 'services/gateway/src/server.ts',
  guard: 'services/gateway/src/server.ts',
  bare: 'bench/gateway/bare-proxy.ts',
  minimal: 'bench/gateway/minimal-proxy.ts'
}

function envOf(kind: Kind, port: number, backend: Backend): Record<string, string> {
  if (kind === 'bare' || kind === 'minimal') return { PORT: String(port), UPSTREAM: backend.upstream }
  const guard = kind === 'guard'
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    SESSIONS_URLS: backend.upstream,
    TASK_SESSIONS_URLS: backend.dead,
    CHAT_URLS: backend.dead,
    CLEANUP_WORKER_URLS: backend.dead,
    REDIS_URL: backend.redisUrl,
    // The guarded gateway shares the sessions service's prefix: it reads the login state it writes.
    REDIS_KEY_PREFIX: guard ? `${backend.ns}:s:` : `${backend.ns}:g:`,
    NATS_NAMESPACE: backend.ns,
    JWT_SECRET: TEST_JWT_SECRET,
    // Every policy stays on; the limits are only set high enough that the load is not refused.
    RATE_LIMIT_AUTHENTICATED: '1000000000',
    LOGIN_GUARD_ENABLED: String(guard),
    SUSPICIOUS_REQUEST_RATE: '1000000000'
  }
}

/**
 * Starts one proxy in front of the backend, as its own process (killed with the backend). `entry` runs
 * another copy of the gateway (an A/B comparison); `nodeArgs` go before it (e.g. `--cpu-prof`).
 */
export async function startTarget(kind: Kind, backend: Backend, opts: { entry?: string; nodeArgs?: string[] } = {}): Promise<Target> {
  const port = await freePort()
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', opts.entry ?? ENTRIES[kind]], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn', ...envOf(kind, port, backend) },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  backend.children.push(child)
  const ready = kind === 'gateway' || kind === 'guard' ? '/ready' : '/health'
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}${ready}`)).ok, 30_000, 100)
  const headers = kind === 'guard' ? guardHeaders : userHeaders
  return { name: kind, port, pid: child.pid ?? 0, url: `http://127.0.0.1:${port}${ROUTE}`, headers }
}

/** User and system CPU seconds a process has used so far (/proc/<pid>/stat, in clock ticks of 10 ms). */
export function cpuSeconds(pid: number): { user: number; system: number; main: number } {
  const fieldsOf = (path: string) => {
    const stat = readFileSync(path, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  }
  const all = fieldsOf(`/proc/${pid}/stat`)
  // The main thread alone (its task id is the pid): the event loop, without V8's GC and compiler threads.
  const main = fieldsOf(`/proc/${pid}/task/${pid}/stat`)
  return { user: Number(all[11]) / 100, system: Number(all[12]) / 100, main: (Number(main[11]) + Number(main[12])) / 100 }
}

export interface CpuRun {
  /** CPU µs (user + system, every thread) per request served. */
  us: number
  /** …of which the main thread's. */
  mainUs: number
  /** Requests per second actually served: below the asked rate, the process was saturated. */
  rps: number
}

/**
 * One run at a fixed rate: the process's CPU time over the requests it served. `warmSeconds` at the same
 * rate go first, not counted: a process that sat idle while the others were measured has had its code
 * aged out by V8 (idle-time GCs flush bytecode and optimized code) and would pay for compiling it again.
 */
export async function cpuPerRequest(target: Target, rate: number, durationSeconds: number, warmSeconds = 0, connections = 10): Promise<CpuRun> {
  if (warmSeconds > 0) await autocannon({ url: target.url, connections, duration: warmSeconds, overallRate: rate, headers: target.headers })
  const before = cpuSeconds(target.pid)
  const r = await autocannon({ url: target.url, connections, duration: durationSeconds, overallRate: rate, headers: target.headers })
  const after = cpuSeconds(target.pid)
  if (r.non2xx || r.errors) throw new Error(`${target.name} on ${target.port}: ${r.non2xx} non-2xx, ${r.errors} errors`)
  const cpu = after.user - before.user + (after.system - before.system)
  return {
    us: (cpu * 1e6) / r.requests.total,
    mainUs: ((after.main - before.main) * 1e6) / r.requests.total,
    rps: r.requests.total / durationSeconds
  }
}

export const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN

/**
 * CPU per request of each target, `rounds` runs each in a rotating order (a burst of outside load does
 * not land on one target only), each after `warmSeconds` of the same load, as the median per target.
 */
export async function cpuTable(targets: Target[], rate: number, durationSeconds: number, rounds: number, warmSeconds = 0): Promise<CpuRun[]> {
  const runs: CpuRun[][] = targets.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const k = (i + round) % targets.length
      const target = targets[k]
      if (target) runs[k]?.push(await cpuPerRequest(target, rate, durationSeconds, warmSeconds))
    }
  }
  return runs.map((rs) => ({ us: median(rs.map((r) => r.us)), mainUs: median(rs.map((r) => r.mainUs)), rps: median(rs.map((r) => r.rps)) }))
}
