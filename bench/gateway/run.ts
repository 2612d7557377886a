/**
 * bench/gateway: GET /api/v1/sessions/active with a valid token, at 10 and 50 connections, against
 * (a) the sessions service directly, (b) the gateway with every policy on (JWT, Redis rate limit,
 * breaker, retries, request ids, header hygiene, metrics), (c) nginx as a plain reverse proxy with
 * keep-alive upstream connections, (d) a bare @fastify/http-proxy with no policies.
 *
 * Every server is its own process (one Node process or one nginx worker each), so autocannon, running
 * here, never shares an event loop with what it measures. All of them log at warn.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  freePort,
  portOpen,
  startRedisServer,
  testToken,
  uniqueName,
  waitFor
} from '@platform/kit/testing'
import autocannon from 'autocannon'
import { fmt, load, printTable, type LoadResult } from '../lib/report.js'
import { repoRoot, startNode, stop } from '../lib/processes.js'

const DURATION = Number(process.env.BENCH_DURATION ?? 3)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
/** The fixed rate at which CPU per request is measured: well under what every target sustains. */
const CPU_RATE = Number(process.env.BENCH_CPU_RATE ?? 3000)
const ROUTE = '/api/v1/sessions/active'
const headers = { authorization: `Bearer ${testToken('bench-user')}` }
// (e): the same user through a login session, so the guard runs its checks on every request.
const guardHeaders = { authorization: `Bearer ${testToken('bench-user', ['user'], { sid: 'bench-sid' })}`, 'user-agent': 'autocannon' }

async function startNginx(upstreamPort: number, port: number): Promise<{ child: ChildProcess; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-nginx-'))
  const conf = `
worker_processes 1;
daemon off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  upstream sessions {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://sessions;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
  await writeFile(join(dir, 'nginx.conf'), conf)
  // Debian's nginx, installed on first use like the infrastructure servers.
  execFileSync('bash', [join(repoRoot, 'infra/local/packages.sh'), 'nginx', 'nginx'], { stdio: 'inherit' })
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'inherit', 'inherit'] })
  const failed = new Promise<never>((_, reject) => child.once('error', reject))
  try {
    await Promise.race([waitFor(() => portOpen(port), 10_000), failed])
  } catch (err) {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return { child, dir }
}

const schema = await createTestSchema(join(repoRoot, 'services/sessions/prisma/migrations'), 'bench_gateway')
const redis = await startRedisServer()
const ns = uniqueName('benchgw')
const dead = `http://127.0.0.1:${await freePort()}`
const ports = { a: await freePort(), b: await freePort(), c: await freePort(), d: await freePort(), e: await freePort(), f: await freePort() }
const children: ChildProcess[] = []
let nginxDir = ''

try {
  children.push(
    await startNode(
      'services/sessions/src/server.ts',
      {
        PORT: String(ports.a),
        HOST: '127.0.0.1',
        DATABASE_URL: schema.url,
        DATABASE_SCHEMA: schema.schema,
        DATABASE_POOL_SIZE: '4',
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: `${ns}:s:`,
        NATS_NAMESPACE: ns,
        JWT_SECRET: TEST_JWT_SECRET
      },
      `http://127.0.0.1:${ports.a}/health`
    )
  )
  const created = await fetch(`http://127.0.0.1:${ports.a}/api/v1/sessions`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'bench' })
  })
  if (created.status !== 201) throw new Error(`could not create the session: ${created.status}`)

  const upstream = `http://127.0.0.1:${ports.a}`
  const gatewayEnv = (port: number, guard: boolean) => ({
    PORT: String(port),
    HOST: '127.0.0.1',
    SESSIONS_URLS: upstream,
    TASK_SESSIONS_URLS: dead,
    CHAT_URLS: dead,
    CLEANUP_WORKER_URLS: dead,
    REDIS_URL: redis.url,
    // The guarded gateway shares the sessions service's prefix: it reads the login state it writes.
    REDIS_KEY_PREFIX: guard ? `${ns}:s:` : `${ns}:g:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET,
    // Every policy stays on; the limits are only set high enough that the load is not refused.
    RATE_LIMIT_AUTHENTICATED: '1000000000',
    LOGIN_GUARD_ENABLED: String(guard),
    SUSPICIOUS_REQUEST_RATE: '1000000000'
  })
  children.push(await startNode('services/gateway/src/server.ts', gatewayEnv(ports.b, false), `http://127.0.0.1:${ports.b}/ready`))
  children.push(await startNode('services/gateway/src/server.ts', gatewayEnv(ports.e, true), `http://127.0.0.1:${ports.e}/ready`))
  children.push(await startNode('bench/gateway/bare-proxy.ts', { PORT: String(ports.d), UPSTREAM: upstream }, `http://127.0.0.1:${ports.d}/health`))
  children.push(await startNode('bench/gateway/minimal-proxy.ts', { PORT: String(ports.f), UPSTREAM: upstream }, `http://127.0.0.1:${ports.f}/health`))
  const pids = { a: children[0]!.pid!, b: children[1]!.pid!, e: children[2]!.pid!, d: children[3]!.pid!, f: children[4]!.pid! }
  const nginx = await startNginx(ports.a, ports.c)
  children.push(nginx.child)
  nginxDir = nginx.dir

  // The gateway really applies its policies on this route.
  const probe = await fetch(`http://127.0.0.1:${ports.b}${ROUTE}`, { headers })
  if (probe.status !== 200 || !probe.headers.get('ratelimit-limit') || probe.headers.get('x-degradation-mode')) {
    throw new Error(`the gateway is not proxying with its policies: ${probe.status} ${[...probe.headers].join(' ')}`)
  }
  for (const port of [ports.c, ports.d, ports.f]) {
    const r = await fetch(`http://127.0.0.1:${port}${ROUTE}`, { headers })
    if (r.status !== 200) throw new Error(`port ${port} answered ${r.status}`)
  }
  const guarded = await fetch(`http://127.0.0.1:${ports.e}${ROUTE}`, { headers: guardHeaders })
  if (guarded.status !== 200 || guarded.headers.get('x-session-id') !== 'bench-sid') {
    throw new Error(`the guard is not checking: ${guarded.status} ${[...guarded.headers].join(' ')}`)
  }

  const run = async (port: number, connections: number, duration: number) => {
    const r = await load({ url: `http://127.0.0.1:${port}${ROUTE}`, connections, duration, headers: port === ports.e ? guardHeaders : headers })
    if (r.non2xx || r.errors) throw new Error(`port ${port}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    return r
  }
  const keys = ['a', 'b', 'c', 'd', 'e', 'f'] as const
  // Warm-up (JIT, pools, the gateway's token cache and rate-limit lease) before anything is measured.
  for (const k of keys) await run(ports[k], 10, 2)
  // The machine is shared: each figure is the median of ROUNDS runs, the four targets taking turns
  // in a rotating order, so a burst of outside load does not land on one target only.
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number
  const results: Record<(typeof keys)[number], Record<number, LoadResult>> = { a: {}, b: {}, c: {}, d: {}, e: {}, f: {} }
  for (const c of [10, 50]) {
    const runs: Record<string, LoadResult[]> = { a: [], b: [], c: [], d: [], e: [], f: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < keys.length; i++) {
        const k = keys[(i + round) % keys.length] as (typeof keys)[number]
        runs[k]!.push(await run(ports[k], c, DURATION))
      }
    }
    for (const k of keys) {
      const rs = runs[k]!
      results[k][c] = { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), errors: 0, non2xx: 0 }
    }
  }

  const names = {
    a: '(a) sessions direct',
    b: '(b) gateway, every policy, guard off',
    c: '(c) nginx reverse proxy',
    d: '(d) bare @fastify/http-proxy',
    e: '(e) gateway, every policy, guard on',
    f: '(f) minimal Fastify + undici proxy'
  }
  const rows: Array<{ figure: string; value: string; target: string; met?: boolean }> = []
  for (const c of [10, 50]) {
    for (const k of keys) {
      const r = results[k][c]!
      rows.push({ figure: `${names[k]} @${c}`, value: `${fmt(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`, target: '' })
    }
  }
  for (const c of [10, 50]) {
    const { a, b, c: nginxR, d } = { a: results.a[c]!, b: results.b[c]!, c: results.c[c]!, d: results.d[c]! }
    rows.push({ figure: `(b)/(d) @${c}`, value: fmt(b.rps / d.rps, 2), target: '≥ 1.00', met: b.rps >= d.rps })
    rows.push({ figure: `(b)/(a) @${c}`, value: fmt(b.rps / a.rps, 2), target: '≥ 0.50', met: b.rps / a.rps >= 0.5 })
    rows.push({ figure: `(b)/(c) @${c}`, value: fmt(b.rps / nginxR.rps, 2), target: '≥ 0.60', met: b.rps / nginxR.rps >= 0.6 })
    rows.push({ figure: `(d)/(a) @${c}`, value: fmt(d.rps / a.rps, 2), target: '' })
    rows.push({ figure: `(c)/(a) @${c}`, value: fmt(nginxR.rps / a.rps, 2), target: '' })
    rows.push({ figure: `(f)/(a) @${c}`, value: fmt(results.f[c]!.rps / a.rps, 2), target: '' })
    rows.push({ figure: `(b)/(f) @${c}`, value: fmt(b.rps / results.f[c]!.rps, 2), target: '' })
    const guardCost = 1 - results.e[c]!.rps / b.rps
    rows.push({ figure: `guard cost 1 - (e)/(b) @${c}`, value: `${fmt(guardCost * 100, 1)} %`, target: '≤ 15 %', met: guardCost <= 0.15 })
    if (c === 10) {
      const added = b.p50 - a.p50
      rows.push({ figure: 'p50 added by the gateway @10', value: `${fmt(added, 2)} ms`, target: '≤ 2 ms', met: added <= 2 })
    }
  }

  // CPU time of one process per request at CPU_RATE (10 connections), median of ROUNDS runs.
  const cpuSeconds = (pid: number) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  }
  const cpuKeys = ['a', 'b', 'd', 'f'] as const
  const cpu: Record<string, number[]> = { a: [], b: [], d: [], f: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of cpuKeys) {
      const before = cpuSeconds(pids[k])
      const r = await autocannon({ url: `http://127.0.0.1:${ports[k]}${ROUTE}`, connections: 10, duration: DURATION, overallRate: CPU_RATE, headers })
      if (r.non2xx || r.errors) throw new Error(`port ${ports[k]}: ${r.non2xx} non-2xx, ${r.errors} errors`)
      cpu[k]!.push(((cpuSeconds(pids[k]) - before) * 1e6) / r.requests.total)
    }
  }
  const us = Object.fromEntries(cpuKeys.map((k) => [k, median(cpu[k]!)])) as Record<(typeof cpuKeys)[number], number>
  rows.push({ figure: `CPU per request @${fmt(CPU_RATE)} req/s: (a) sessions`, value: `${fmt(us.a)} µs`, target: '' })
  rows.push({ figure: '… (b) gateway, every policy', value: `${fmt(us.b)} µs`, target: '' })
  rows.push({ figure: '… (d) bare @fastify/http-proxy', value: `${fmt(us.d)} µs`, target: '' })
  rows.push({ figure: '… (f) minimal proxy', value: `${fmt(us.f)} µs`, target: '' })
  rows.push({ figure: '… every policy together, (b) − (f)', value: `${fmt(us.b - us.f)} µs`, target: '' })
  printTable(`bench/gateway: GET /api/v1/sessions/active through each proxy (median of ${ROUNDS} × ${DURATION} s)`, rows)
} finally {
  for (const child of children.reverse()) await stop(child)
  if (nginxDir) await rm(nginxDir, { recursive: true, force: true })
  await redis.dispose()
  await schema.drop()
}
