/**
 * A CPU profile of one proxy under bench/gateway's load: the sessions service behind it, the proxy run
 * with `--cpu-prof`, GET /api/v1/sessions/active at a fixed rate, then the profile of the measured run
 * summarised (cpu-summary.ts).
 *
 *   node --import tsx bench/gateway/profile.ts [gateway|guard|bare|minimal] [entry]
 *
 * BENCH_CPU_RATE (req/s, default 1500), BENCH_DURATION (s, default 10), WARMUP (s at that rate first, default 10), PROFILE_DIR (the profile is kept
 * there; default a temporary directory, removed), PROFILE_TOP (frames listed, default 30), PROFILE=0 (no
 * profiler: the CPU time only), STRACE=1 (the system calls of the run, counted), TARGET_NODE_ARGS (more
 * options for the proxy's node, e.g. `--trace-gc-nvp`), PERF=1 (`perf record` of on-CPU time into PROFILE_DIR/perf.data; add
 * TARGET_NODE_ARGS=--perf-basic-prof to name JavaScript frames).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { printSummary, summarise, type Profile } from './cpu-summary.js'
import { cpuPerRequest, startBackend, startTarget, type Kind, type Target } from './targets.js'

const RATE = Number(process.env.BENCH_CPU_RATE ?? 1500)
const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const PROFILE = process.env.PROFILE !== '0'
const KINDS: readonly string[] = ['gateway', 'guard', 'bare', 'minimal']
const isKind = (k: string): k is Kind => KINDS.includes(k)
const kind = process.argv[2] ?? 'gateway'
if (!isKind(kind)) throw new Error(`unknown target ${kind}: one of ${KINDS.join(', ')}`)
const entry = process.argv[3]

/** strace -c on the process while `run` runs (strace slows it: compare the counts, not the times). */
async function straced<T>(pid: number, file: string, run: () => Promise<T>): Promise<T> {
  const strace = spawn('strace', ['-c', '-f', '-o', file, '-p', String(pid)], { stdio: 'ignore' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  try {
    return await run()
  } finally {
    strace.kill('SIGINT')
    await new Promise((resolve) => strace.once('exit', resolve))
  }
}

/** perf record (cpu-clock: on-CPU time only, kernel included) on the process while `run` runs. */
async function perfRecorded<T>(pid: number, file: string, run: () => Promise<T>): Promise<T> {
  const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', String(pid), '-o', file], { stdio: 'ignore' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  try {
    return await run()
  } finally {
    perf.kill('SIGINT')
    await new Promise((resolve) => perf.once('exit', resolve))
  }
}

/** The main thread's profile (tsx's loader hooks run in a thread of their own, with a profile of its own). */
async function mainProfile(dir: string) {
  // CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile: thread 0 is the main thread.
  const file = (await readdir(dir))
    .filter((f) => /\.0\.\d+\.cpuprofile$/.test(f))
    .sort()
    .pop()
  if (!file) throw new Error(`no profile in ${dir}`)
  return { file: join(dir, file), profile: JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile }
}

const dir = process.env.PROFILE_DIR ?? (await mkdtemp(join(tmpdir(), 'gateway-prof-')))
const backend = await startBackend('bench_gwprof')
try {
  const startedAt = performance.now()
  const target: Target = await startTarget(kind, backend, {
    ...(entry ? { entry } : {}),
    nodeArgs: [...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', dir] : []), ...(process.env.TARGET_NODE_ARGS?.split(' ').filter(Boolean) ?? [])]
  })
  await cpuPerRequest(target, RATE, Number(process.env.WARMUP ?? 10)) // warm-up: the JIT settles
  // The profile's clock starts (about) when the process does: the measured run's window in it.
  const fromMs = performance.now() - startedAt
  const measure = () => cpuPerRequest(target, RATE, DURATION)
  const r =
    process.env.STRACE === '1'
      ? await straced(target.pid, join(dir, 'strace.txt'), measure)
      : process.env.PERF === '1'
        ? await perfRecorded(target.pid, join(dir, 'perf.data'), measure)
        : await measure()
  const toMs = performance.now() - startedAt
  const requests = Math.round(r.rps * DURATION)
  console.log(
    `\n${kind}: ${requests} requests at ${r.rps.toFixed(0)} req/s (asked ${RATE}); CPU ${r.us.toFixed(0)} µs per request${PROFILE ? ' (profiler on)' : ''}`
  )
  if (process.env.STRACE === '1') console.log(`system calls:\n${await readFile(join(dir, 'strace.txt'), 'utf8')}`)
  if (PROFILE) {
    // An orderly exit writes the profile.
    const child = backend.children.pop()
    if (child) {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    }
    const { file, profile } = await mainProfile(dir)
    console.log(`profile ${file}`)
    printSummary(summarise(profile, Number(process.env.PROFILE_TOP ?? 30), { fromMs, toMs }), requests)
  }
} finally {
  await backend.dispose()
  if (!process.env.PROFILE_DIR) await rm(dir, { recursive: true, force: true })
}
