import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { test } from 'tap'
import { build } from './helper.js'

const run = promisify(execFile)
const gatewayDir = join(import.meta.dirname, '..')
const REDOCLY = join(gatewayDir, 'node_modules', '.bin', 'redocly')
const CONFIG = join(gatewayDir, 'redocly.yaml')

interface Problem {
  ruleId: string
  severity: string
  message: string
  location: Array<{ pointer?: string }>
}

type Doc = {
  servers: Array<{ url: string }>
  paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, unknown>; content?: unknown }> }>>
}

async function document(t: Parameters<typeof build>[0], env: Record<string, string> = {}): Promise<{ text: string; doc: Doc }> {
  const { app } = await build(t, env)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  if (res.statusCode !== 200) throw new Error(`/docs/json answered ${res.statusCode}`)
  return { text: res.body, doc: res.json<Doc>() }
}

test('redocly lint of /docs/json finds no error and no warning', async (t) => {
  const { text } = await document(t)
  const dir = await mkdtemp(join(tmpdir(), 'gateway-openapi-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'openapi.json')
  await writeFile(file, text)
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }
  // It exits 1 when it finds errors: the report is on stdout either way.
  const { stdout } = await run(REDOCLY, ['lint', file, '--config', CONFIG, '--format=json'], { env, maxBuffer: 16 * 1024 * 1024 }).catch(
    (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' })
  )
  const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: Problem[] }
  t.same(
    report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} (${p.location[0]?.pointer ?? ''})`),
    [],
    'no problem'
  )
  t.equal(report.totals.errors, 0)
  t.equal(report.totals.warnings, 0)
})

test('every rule turned off in redocly.yaml says why on the line above', async (t) => {
  const lines = (await readFile(CONFIG, 'utf8')).split('\n')
  const off = lines.flatMap((line, i) => (/^\s+[\w/-]+:\s*off\s*$/.test(line) ? [i] : []))
  t.ok(off.length > 0)
  for (const i of off) t.match(lines[i - 1], /^\s+# Off: \S.{10,}/, `${lines[i]?.trim()} has its reason`)
})

test('the document names its server: `/` by default, PUBLIC_URL when set', async (t) => {
  t.same(
    (await document(t)).doc.servers.map((s) => s.url),
    ['/']
  )
  t.same(
    (await document(t, { PUBLIC_URL: 'https://api.example.com' })).doc.servers.map((s) => s.url),
    ['https://api.example.com']
  )
})

test('every operation lists what the gateway itself may answer; every reply that may be degraded documents both headers', async (t) => {
  const { doc } = await document(t)
  const everywhere = ['400', '408', '414', '431', '500']
  const proxied = [...everywhere, '401', '403', '404', '413', '429', '502', '503', '504']
  let operations = 0
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      operations++
      const kind = path === '/ws/chat' ? 'websocket' : path.startsWith('/api/') ? 'proxy' : 'gateway'
      const expected = kind === 'proxy' ? proxied : kind === 'websocket' ? [...everywhere, '429', '502', '503', '504'] : everywhere
      const statuses = Object.keys(op.responses)
      for (const status of expected) t.ok(statuses.includes(status), `${method} ${path}: ${status}`)
      for (const [status, res] of Object.entries(op.responses)) {
        const headers = Object.keys(res.headers ?? {})
        t.ok(headers.includes('X-Request-Id'), `${method} ${path} ${status}: X-Request-Id`)
        const degradable = kind !== 'gateway'
        t.equal(
          headers.includes('X-Degradation-Mode') && headers.includes('X-Degradation-Reason'),
          degradable,
          `${method} ${path} ${status}: degradation headers ${degradable ? 'documented' : 'absent'}`
        )
      }
    }
  }
  t.ok(operations > 20)
  const upload = doc.paths['/api/v1/sessions']?.post?.responses['413']
  t.same(upload?.content, { 'application/json': { schema: { $ref: '#/components/schemas/ErrorReply' } } })
  t.same(doc.paths['/ws/chat']?.get?.responses['101']?.headers, {
    'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' },
    'X-Degradation-Mode': { $ref: '#/components/headers/X-Degradation-Mode' },
    'X-Degradation-Reason': { $ref: '#/components/headers/X-Degradation-Reason' }
  })
})
