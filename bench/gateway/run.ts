/**
 * bench/gateway: GET /api/v1/sessions/active with a valid token against (a) the sessions service directly,
 * (b) the gateway with every policy on (JWT, Redis rate limit, breaker, retries, request ids, header
 * hygiene, metrics), (c) nginx as a plain reverse proxy with keep-alive upstream connections, (d) a bare
 * @fastify/http-proxy with no policies, (e) the gateway with the login guard on as well, (f) the least a
 * Fastify + undici proxy can do.
 *
 * Throughput at 10 and 50 connections, then the CPU time each process spends per request at a fixed rate:
 * on 2 cores a Node proxy cannot reach half of direct throughput, so CPU per request is the bar (issue 14).
 * Every server is its own process (one Node process or one nginx worker each), so autocannon, running
 * here, never shares an event loop with what it measures. All of them log at warn.
 *
 * BENCH_DURATION (s per run, default 3), BENCH_ROUNDS (default 5), BENCH_CPU_RATE (req/s, default 1500),
 * BENCH_CPU_WARM (s of load before each CPU run, default 2), GATEWAY_ENTRY (another gateway's server.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, portOpen, waitFor } from '@platform/kit/testing'
import { fmt, load, printTable, type LoadResult } from '../lib/report.js'
import { repoRoot } from '../lib/processes.js'
import { ROUTE, cpuTable, median, startBackend, startTarget, userHeaders, type CpuRun, type Target } from './targets.js'

const DURATION = Number(process.env.BENCH_DURATION ?? 3)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
/** The fixed rate at which CPU per request is measured: under what every target sustains here, so none is saturated. */
const CPU_RATE = Number(process.env.BENCH_CPU_RATE ?? 1500)
/** Seconds of that load right before each measured run (see cpuPerRequest). */
const CPU_WARM = Number(process.env.BENCH_CPU_WARM ?? 2)
const CONNECTIONS = [10, 50] as const
/** Another copy of the gateway's server.ts for (b) and (e): the same table for a version before a change. */
const GATEWAY = process.env.GATEWAY_ENTRY ? { entry: process.env.GATEWAY_ENTRY } : {}

const NAMES = {
  a: '(a) sessions direct',
  b: '(b) gateway, every policy, guard off',
  c: '(c) nginx reverse proxy',
  d: '(d) bare @fastify/http-proxy',
  e: '(e) gateway, every policy, guard on',
  f: '(f) minimal Fastify + undici proxy'
} as const
type Key = keyof typeof NAMES
const KEYS: readonly Key[] = ['a', 'b', 'c', 'd', 'e', 'f']

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

/** Every target answers the route, and the gateways really apply their policies on it. */
async function probe(targets: Record<Key, Target>): Promise<void> {
  const gateway = await fetch(targets.b.url, { headers: targets.b.headers })
  if (gateway.status !== 200 || !gateway.headers.get('ratelimit-limit') || gateway.headers.get('x-degradation-mode')) {
    throw new Error(`the gateway is not proxying with its policies: ${gateway.status} ${[...gateway.headers].join(' ')}`)
  }
  const guarded = await fetch(targets.e.url, { headers: targets.e.headers })
  if (guarded.status !== 200 || guarded.headers.get('x-session-id') !== 'bench-sid') {
    throw new Error(`the guard is not checking: ${guarded.status} ${[...guarded.headers].join(' ')}`)
  }
  for (const k of ['a', 'c', 'd', 'f'] as const) {
    const r = await fetch(targets[k].url, { headers: targets[k].headers })
    if (r.status !== 200) throw new Error(`${NAMES[k]} answered ${r.status}`)
  }
}

/**
 * Throughput at each connection count, the median of ROUNDS runs. The machine is shared: the targets
 * take turns in a rotating order, so a burst of outside load does not land on one target only.
 */
async function throughput(targets: Record<Key, Target>): Promise<Record<Key, Record<number, LoadResult>>> {
  const run = async (t: Target, connections: number, duration: number) => {
    const r = await load({ url: t.url, connections, duration, headers: t.headers })
    if (r.non2xx || r.errors) throw new Error(`${t.name}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    return r
  }
  // Warm-up (JIT, pools, the gateway's token cache and rate-limit lease) before anything is measured.
  for (const k of KEYS) await run(targets[k], 10, 2)
  const results: Record<Key, Record<number, LoadResult>> = { a: {}, b: {}, c: {}, d: {}, e: {}, f: {} }
  for (const c of CONNECTIONS) {
    const runs: Record<Key, LoadResult[]> = { a: [], b: [], c: [], d: [], e: [], f: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < KEYS.length; i++) {
        const k = KEYS[(i + round) % KEYS.length] ?? 'a'
        runs[k].push(await run(targets[k], c, DURATION))
      }
    }
    for (const k of KEYS) {
      const rs = runs[k]
      results[k][c] = {
        rps: median(rs.map((r) => r.rps)),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        errors: 0,
        non2xx: 0
      }
    }
  }
  return results
}

type Row = { figure: string; value: string; target: string; met?: boolean }

/** The bars: CPU per request, throughput against the bare and the minimal proxy, the guard's cost. */
function targetRows(rps: Record<Key, Record<number, LoadResult>>, cpu: Record<'a' | 'b' | 'd' | 'e' | 'f', CpuRun>): Row[] {
  const us = (r: CpuRun) => `${fmt(r.us)} µs at ${fmt(r.rps)} req/s`
  const rows: Row[] = [
    { figure: `CPU per request @${fmt(CPU_RATE)} req/s: ${NAMES.a}`, value: us(cpu.a), target: '' },
    { figure: `… ${NAMES.b}`, value: us(cpu.b), target: '≤ (d), ≤ (f) + 25 µs' },
    { figure: `… ${NAMES.e}`, value: us(cpu.e), target: '' },
    { figure: `… ${NAMES.d}`, value: us(cpu.d), target: '' },
    { figure: `… ${NAMES.f}`, value: us(cpu.f), target: '' },
    { figure: 'CPU (b) − (d)', value: `${fmt(cpu.b.us - cpu.d.us)} µs`, target: '≤ 0 µs', met: cpu.b.us <= cpu.d.us },
    { figure: 'CPU (b) − (f): every policy together', value: `${fmt(cpu.b.us - cpu.f.us)} µs`, target: '≤ 25 µs', met: cpu.b.us - cpu.f.us <= 25 },
    { figure: 'CPU (e) − (b): the login guard', value: `${fmt(cpu.e.us - cpu.b.us)} µs`, target: '' }
  ]
  for (const c of CONNECTIONS) {
    const of = (k: Key) => rps[k][c]?.rps ?? NaN
    const [b, d, e, f] = [of('b'), of('d'), of('e'), of('f')]
    rows.push({ figure: `(b)/(d) @${c}`, value: fmt(b / d, 2), target: '≥ 1.00', met: b >= d })
    rows.push({ figure: `(b)/(f) @${c}`, value: fmt(b / f, 2), target: '≥ 0.95', met: b / f >= 0.95 })
    const guardCost = 1 - e / b
    rows.push({ figure: `guard cost 1 − (e)/(b) @${c}`, value: `${fmt(guardCost * 100, 1)} %`, target: '≤ 5 %', met: guardCost <= 0.05 })
  }
  return rows
}

/** What the bars are measured against: each target's throughput and its ratio to the service itself. */
function referenceRows(rps: Record<Key, Record<number, LoadResult>>): Row[] {
  const rows: Row[] = []
  for (const c of CONNECTIONS) {
    for (const k of KEYS) {
      const r = rps[k][c]
      const ratio = k === 'a' || !r ? '' : `, ${fmt(r.rps / (rps.a[c]?.rps ?? NaN), 2)} of (a)`
      if (r) rows.push({ figure: `${NAMES[k]} @${c}`, value: `${fmt(r.rps)} req/s${ratio}, p50 ${r.p50} ms, p99 ${r.p99} ms`, target: '' })
    }
  }
  return rows
}

const backend = await startBackend('bench_gateway')
let nginxDir = ''
try {
  const nginxPort = await freePort()
  const nginx = await startNginx(backend.direct.port, nginxPort)
  backend.children.push(nginx.child)
  nginxDir = nginx.dir
  const targets: Record<Key, Target> = {
    a: backend.direct,
    b: await startTarget('gateway', backend, GATEWAY),
    c: { name: 'nginx', port: nginxPort, pid: nginx.child.pid ?? 0, url: `http://127.0.0.1:${nginxPort}${ROUTE}`, headers: userHeaders },
    d: await startTarget('bare', backend),
    e: await startTarget('guard', backend, GATEWAY),
    f: await startTarget('minimal', backend)
  }
  await probe(targets)
  const rps = await throughput(targets)
  const [a, b, d, e, f] = await cpuTable([targets.a, targets.b, targets.d, targets.e, targets.f], CPU_RATE, DURATION, ROUNDS, CPU_WARM)
  if (!a || !b || !d || !e || !f) throw new Error('a CPU figure is missing')
  printTable(`bench/gateway: GET ${ROUTE} through each proxy (median of ${ROUNDS} × ${DURATION} s)`, [
    ...targetRows(rps, { a, b, d, e, f }),
    ...referenceRows(rps)
  ])
} finally {
  await backend.dispose()
  if (nginxDir) await rm(nginxDir, { recursive: true, force: true })
}
