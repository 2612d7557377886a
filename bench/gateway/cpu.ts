/**
 * CPU per request only, for comparing proxies quickly (bench/gateway/run.ts has the full table):
 *
 *   node --import tsx bench/gateway/cpu.ts gateway minimal bare guard [gateway=<path to another server.ts>]
 *
 * `kind=<entry>` runs another copy of the gateway (an A/B comparison of a change). BENCH_CPU_RATE (req/s,
 * default 1500), BENCH_DURATION (s, default 3), BENCH_ROUNDS (default 7), WARMUP (s per target first, default 15),
 * WARM_EACH (s of load before each measured run, default 2), TARGET_NODE_ARGS (options for every target's node).
 */
import { fmt, printTable } from '../lib/report.js'
import { cpuTable, startBackend, startTarget, type Kind, type Target } from './targets.js'

const RATE = Number(process.env.BENCH_CPU_RATE ?? 1500)
const DURATION = Number(process.env.BENCH_DURATION ?? 3)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const WARMUP = Number(process.env.WARMUP ?? 15)
/** Seconds of the same load right before each measured run (see cpuPerRequest). */
const WARM_EACH = Number(process.env.WARM_EACH ?? 2)
const KINDS: readonly string[] = ['gateway', 'guard', 'bare', 'minimal']
const isKind = (k: string | undefined): k is Kind => k !== undefined && KINDS.includes(k)

const asked = process.argv.slice(2).map((arg) => {
  const [kind, entry] = arg.split('=')
  if (!isKind(kind)) throw new Error(`unknown target ${arg}: one of ${KINDS.join(', ')}, optionally =<entry>`)
  return { kind, entry, label: arg }
})
if (asked.length === 0) throw new Error('name the targets: gateway, guard, bare, minimal')

const backend = await startBackend('bench_gwcpu')
try {
  const targets: Target[] = []
  const nodeArgs = process.env.TARGET_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  for (const a of asked) targets.push(await startTarget(a.kind, backend, { nodeArgs, ...(a.entry ? { entry: a.entry } : {}) }))
  // Warm-up: the JIT settles (a cold gateway spends a third of its CPU compiling).
  for (const t of targets) await cpuTable([t], RATE, WARMUP, 1)
  const result = await cpuTable(targets, RATE, DURATION, ROUNDS, WARM_EACH)
  printTable(
    `CPU per request at ${fmt(RATE)} req/s (median of ${ROUNDS} × ${DURATION} s)`,
    asked.map((a, i) => ({
      figure: a.label,
      value: `${fmt(result[i]?.us ?? NaN)} µs (main thread ${fmt(result[i]?.mainUs ?? NaN)}) at ${fmt(result[i]?.rps ?? NaN)} req/s`,
      target: ''
    }))
  )
} finally {
  await backend.dispose()
}
