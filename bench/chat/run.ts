/**
 * Chat benchmark (issue 5).
 * (1) 10,000 idle authenticated WebSocket connections on one instance: heap and RSS per connection,
 *     measured in the server process after a full GC; the clients run in a child process of their own.
 * (2) Two instances, 200 connections in 100 sessions (one end of each session on each instance),
 *     1,000 user messages/s in total with the assistant off: round trip from send on one instance to
 *     receipt on the other (p50, p99) and messages lost.
 * Run: node --import tsx bench/chat/run.ts
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { cpus, loadavg } from 'node:os'
import { WebSocket } from 'ws'
import { signToken } from '@platform/kit'
import { TEST_JWT_SECRET, createTestSchema, deleteRedisKeys, deleteStreams, uniqueName } from '@platform/kit/testing'
import { fmt, printTable, type Row } from '../lib/report.js'

const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000)
const SESSIONS = 100
const RATE = Number(process.env.BENCH_RATE ?? 1000) // user messages per second, in total
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 20)
const WARMUP_SECONDS = 5

const here = import.meta.dirname
const root = join(here, '..', '..')
const schema = await createTestSchema(join(root, 'services', 'chat', 'prisma', 'migrations'), 'bench_chat')
const ns = uniqueName('benchchat')

const baseEnv = {
  ...process.env,
  NODE_ENV: 'production',
  LOG_LEVEL: 'warn',
  DATABASE_URL: schema.url,
  DATABASE_SCHEMA: schema.schema,
  DATABASE_POOL_SIZE: '8',
  REDIS_KEY_PREFIX: `${ns}:`,
  NATS_NAMESPACE: ns,
  JWT_SECRET: TEST_JWT_SECRET
}

/** Runs a TypeScript file in a child with IPC, after raising its open-file limit (10,000 sockets). */
function child(file: string, args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildProcess {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const cmd = [
    'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)";',
    'exec',
    quote(process.execPath),
    ...nodeArgs.map(quote),
    '--import',
    'tsx',
    quote(join(here, file)),
    ...args.map(quote)
  ].join(' ')
  return spawn('bash', ['-c', cmd], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

function request<T>(proc: ChildProcess, cmd: string, reply = cmd, payload: object = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { cmd: string }) => {
      if (msg.cmd !== reply) return
      proc.off('message', onMessage)
      resolve(msg as T)
    }
    proc.on('message', onMessage)
    proc.once('exit', (code) => reject(new Error(`child exited (${code}) before "${reply}"`)))
    if (cmd) proc.send({ cmd, ...payload })
  })
}

async function startInstance(env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const proc = child('instance.ts', [], { ...baseEnv, ...env }, ['--expose-gc', ...prof])
  const { port } = await request<{ port: number }>(proc, '', 'ready')
  return { proc, url: `ws://127.0.0.1:${port}/ws/chat` }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
  await exited
  clearTimeout(timer)
}

interface Memory {
  heapUsed: number
  rss: number
}

// ------------------------------------------------------------------------------------------------
// (1) idle connections

async function idle(): Promise<Row[] & Array<{ met?: boolean }>> {
  const server = await startInstance({ ASSISTANT_ENABLED: 'false' })
  try {
    const before = await request<Memory>(server.proc, 'memory')
    const clients = child('idle-clients.ts', [server.url, String(IDLE_CONNECTIONS), TEST_JWT_SECRET], baseEnv)
    const opened = await request<{ welcomed: number; failed: number; ms: number }>(clients, '', 'opened')
    await new Promise((r) => setTimeout(r, 1000))
    const after = await request<Memory>(server.proc, 'memory')
    await request(clients, 'close', 'closed')
    await stop(clients)
    const heap = (after.heapUsed - before.heapUsed) / opened.welcomed / 1024
    const rss = (after.rss - before.rss) / opened.welcomed / 1024
    return [
      {
        figure: 'idle connections open (welcomed)',
        value: fmt(opened.welcomed),
        target: fmt(IDLE_CONNECTIONS),
        met: opened.welcomed === IDLE_CONNECTIONS
      },
      { figure: 'time to open them (200 at a time)', value: `${fmt(opened.ms / 1000, 1)} s`, target: '' },
      { figure: 'heap per idle connection', value: `${fmt(heap, 2)} KB`, target: '≤ 10 KB', met: heap <= 10 },
      { figure: 'RSS per idle connection', value: `${fmt(rss, 2)} KB`, target: '' }
    ]
  } finally {
    await stop(server.proc)
  }
}

// ------------------------------------------------------------------------------------------------
// (2) two instances under load

interface Peer {
  ws: WebSocket
  other: Peer | null
  user: string
}

function connect(url: string, user: string): Promise<WebSocket> {
  const token = signToken({ sub: user, roles: ['user'] }, { secret: TEST_JWT_SECRET })
  const ws = new WebSocket(`${url}?token=${token}`, { perMessageDeflate: false })
  return new Promise((resolve, reject) => {
    ws.once('message', () => resolve(ws))
    ws.once('error', reject)
  })
}

function reply(ws: WebSocket, frame: object, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const f = JSON.parse(data.toString()) as Record<string, unknown>
      if (f.type !== type && f.type !== 'error') return
      ws.off('message', onMessage)
      resolve(f)
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify(frame))
  })
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

async function load(): Promise<Array<Row & { met?: boolean }>> {
  const env = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000000' }
  const one = await startInstance(env)
  const two = await startInstance(env)
  const peers: Peer[] = []
  try {
    for (let i = 0; i < SESSIONS; i++) {
      const user = `load-${i}`
      const a: Peer = { ws: await connect(one.url, user), other: null, user }
      const b: Peer = { ws: await connect(two.url, user), other: a, user }
      a.other = b
      const session = await reply(a.ws, { type: 'session_init' }, 'session')
      await reply(b.ws, { type: 'session_init', chatSessionId: session.chatSessionId }, 'session')
      peers.push(a, b)
    }

    // Each content is unique; its send time (and whether it is measured) is kept until the other end receives it.
    const sentAt = new Map<string, { at: number; measured: boolean }>()
    const latencies: number[] = []
    let sent = 0
    let errors = 0
    let received = 0
    let duplicates = 0
    const seen = new Set<string>()
    for (const p of peers) {
      p.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString()) as { type: string; content?: string }
        if (f.type === 'error') errors++
        if (f.type !== 'message' || !f.content) return
        const from = f.content.slice(0, f.content.indexOf('|'))
        if (from === p.ws.url) return // its own echo
        if (seen.has(f.content)) {
          duplicates++
          return
        }
        seen.add(f.content)
        const origin = sentAt.get(f.content)
        if (origin === undefined) return
        sentAt.delete(f.content)
        if (!origin.measured) return
        received++
        latencies.push(performance.now() - origin.at)
      })
    }

    // Paced sends: at every tick, catch up to RATE × elapsed, round robin over the 200 connections.
    let n = 0
    const run = async (seconds: number, measure: boolean) => {
      const start = performance.now()
      const first = n
      await new Promise<void>((resolve) => {
        const tick = setInterval(() => {
          const elapsed = (performance.now() - start) / 1000
          const due = Math.min(seconds, elapsed) * RATE
          while (n - first < due) {
            const p = peers[n % peers.length] as Peer
            const content = `${p.ws.url}|${n}`
            sentAt.set(content, { at: performance.now(), measured: measure })
            p.ws.send(JSON.stringify({ type: 'message', content }))
            n++
            if (measure) sent++
          }
          if (elapsed >= seconds) {
            clearInterval(tick)
            resolve()
          }
        }, 5)
      })
      return (n - first) / ((performance.now() - start) / 1000)
    }
    await run(WARMUP_SECONDS, false)
    const rate = await run(LOAD_SECONDS, true)
    // Stragglers: wait until everything arrived or 5 s passed.
    const deadline = Date.now() + 5000
    while (received < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    const lost = sent - received
    latencies.sort((x, y) => x - y)
    const p50 = percentile(latencies, 50)
    const p99 = percentile(latencies, 99)
    return [
      { figure: 'sessions × connections (instance 1 + 2)', value: `${SESSIONS} × 2`, target: '100 × 2' },
      { figure: 'user messages sent (measured)', value: `${fmt(sent)} in ${LOAD_SECONDS} s`, target: '' },
      { figure: 'send rate achieved', value: `${fmt(rate)} msg/s`, target: '1,000 msg/s', met: rate >= RATE * 0.97 },
      { figure: 'round trip to the other instance, p50', value: `${fmt(p50, 1)} ms`, target: '' },
      { figure: 'round trip to the other instance, p99', value: `${fmt(p99, 1)} ms`, target: '≤ 50 ms', met: p99 <= 50 },
      { figure: 'round trip, max', value: `${fmt(latencies.at(-1) ?? NaN, 1)} ms`, target: '' },
      { figure: 'messages lost', value: fmt(lost), target: '0', met: lost === 0 },
      { figure: 'duplicates delivered', value: fmt(duplicates), target: '0', met: duplicates === 0 },
      { figure: 'error frames', value: fmt(errors), target: '0', met: errors === 0 }
    ]
  } finally {
    for (const p of peers) p.ws.terminate()
    await Promise.all([stop(one.proc), stop(two.proc)])
  }
}

let rows: Array<Row & { met?: boolean }>
const loadBefore = loadavg()[0] ?? 0
try {
  rows = [...(await idle()), ...(await load())]
  // The machine is shared: its load says how much of the CPU these figures had.
  rows.push({
    figure: 'machine load average (1 min), start → end',
    value: `${fmt(loadBefore, 1)} → ${fmt(loadavg()[0] ?? 0, 1)} on ${cpus().length} cores`,
    target: ''
  })
} finally {
  // Best effort: what is left of a run's own prefix or namespace harms nothing.
  await schema.drop().catch(() => undefined)
  await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => undefined)
  await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => undefined)
}
printTable('chat: idle connections and cross-instance round trip', rows)
process.exit(0)
