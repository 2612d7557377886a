/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): the top frames by self time, and self time by where the
 * code lives (a package, node's own, the gateway, the kit). `node --import tsx bench/gateway/cpu-summary.ts
 * <file.cpuprofile> [top]`, or from profile.ts.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

export interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** `node_modules/.pnpm/fastify@5.1.0/node_modules/fastify/lib/x.js` → `fastify`; node's own → `node:…`. */
function placeOf(url: string): string {
  if (url === '') return '(vm)'
  if (url.startsWith('node:')) return 'node'
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url)
  }
  const match = /\/(services\/[^/]+|packages\/[^/]+)\//.exec(url)
  return match?.[1] ?? url
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length)
  const repo = url.indexOf('/main/')
  return repo === -1 ? url : url.slice(repo + '/main/'.length)
}

const frameOf = (node: ProfileNode) =>
  `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`

export interface Summary {
  totalMs: number
  idleMs: number
  frames: Array<{ frame: string; ms: number; share: number }>
  places: Array<{ place: string; ms: number; share: number }>
  /** Frames by inclusive time (self and everything they called), each frame counted once per stack. */
  inclusive: Array<{ frame: string; ms: number; share: number }>
}

/** Samples between `fromMs` and `toMs` after the profile's start (all when absent). */
export interface Window {
  fromMs: number
  toMs: number
}

export function summarise(profile: Profile, top = 25, window?: Window): Summary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  let at = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    at += delta
    if (window && (at < window.fromMs * 1000 || at > window.toMs * 1000)) continue
    const id = profile.samples[i] ?? 0
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta)
  }
  const frames = new Map<string, number>()
  const places = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (!node) continue
    const { functionName, url } = node.callFrame
    total += us
    if (functionName === '(idle)' || functionName === '(program)') idle += functionName === '(idle)' ? us : 0
    if (functionName === '(idle)') continue
    const frame = frameOf(node)
    frames.set(frame, (frames.get(frame) ?? 0) + us)
    const place = functionName.startsWith('(') ? functionName : placeOf(url)
    places.set(place, (places.get(place) ?? 0) + us)
  }
  // Inclusive: every sample's time goes to each distinct frame on its stack.
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const inclusive = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at)
      if (!node || node.callFrame.functionName === '(idle)') break
      const key = frameOf(node)
      if (seen.has(key)) continue
      seen.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + us)
    }
  }
  const busy = total - idle
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
      .map(([k, us]) => ({ k, ms: us / 1000, share: us / busy }))
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    frames: rank(frames).map(({ k, ms, share }) => ({ frame: k, ms, share })),
    places: rank(places).map(({ k, ms, share }) => ({ place: k, ms, share })),
    inclusive: rank(inclusive).map(({ k, ms, share }) => ({ frame: k, ms, share }))
  }
}

export function printSummary(s: Summary, requests?: number): void {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)} %`
  const perRequest = (ms: number) => (requests ? `${((ms * 1000) / requests).toFixed(1).padStart(6)} µs/req` : '')
  console.log(
    `\nprofiled ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${(s.totalMs - s.idleMs).toFixed(0)} ms ${perRequest(s.totalMs - s.idleMs)}`
  )
  console.log('\nself time by place (share of busy time):')
  for (const p of s.places) console.log(`  ${pct(p.share)} ${perRequest(p.ms)}  ${p.place}`)
  console.log('\ntop frames by self time:')
  for (const f of s.frames) console.log(`  ${pct(f.share)} ${perRequest(f.ms)}  ${f.frame}`)
  console.log('\ntop frames by inclusive time:')
  for (const f of s.inclusive) console.log(`  ${pct(f.share)} ${perRequest(f.ms)}  ${f.frame}`)
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const file = process.argv[2]
  if (!file) throw new Error('usage: cpu-summary.ts <file.cpuprofile> [top]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  printSummary(summarise(profile, Number(process.argv[3] ?? 25)), process.argv[4] ? Number(process.argv[4]) : undefined)
}
