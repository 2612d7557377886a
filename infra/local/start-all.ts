/**
 * Starts every service under services/ (each with a src/server.ts), prints their logs, prints where
 * each listens once healthy, and on Ctrl-C stops them all gracefully.
 *
 * Logs: the services always write JSON lines to this script. On a terminal (or with LOG_FORMAT=pretty)
 * it prints them as readable lines, the service's name first in a colour of its own; otherwise
 * (LOG_FORMAT=json, or piped) the JSON lines as they are, each carrying `service`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { LOG_FORMATS, logFormat, prettyLine, type LogFormatSetting } from '../../packages/kit/src/logger.js'

const root = join(import.meta.dirname, '..', '..')

const formatSetting = process.env.LOG_FORMAT || 'auto'
if (!LOG_FORMATS.includes(formatSetting as LogFormatSetting)) {
  console.error(`LOG_FORMAT: must be one of ${LOG_FORMATS.join(', ')} (got "${formatSetting}")`)
  process.exit(1)
}
const isTTY = process.stdout.isTTY === true
const pretty = logFormat(formatSetting as LogFormatSetting, isTTY) === 'pretty' ? prettyLine({ colorize: isTTY }) : null
const services = readdirSync(join(root, 'services'))
  .filter((name) => existsSync(join(root, 'services', name, 'src', 'server.ts')))
  .map((name) => {
    const pkg = JSON.parse(readFileSync(join(root, 'services', name, 'package.json'), 'utf8')) as { platform?: { port?: number } }
    return { name, port: Number(process.env[`${name.toUpperCase().replace(/-/g, '_')}_PORT`] ?? pkg.platform?.port) }
  })
  .sort((a, b) => a.port - b.port)

const children: ChildProcess[] = []
let stopping = false

for (const s of services) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(root, 'services', s.name),
    // JSON from every service: this script decides how it is shown.
    env: { ...process.env, PORT: String(s.port), LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: Ctrl-C reaches only this script, which then stops each service once, gracefully
    // (a second signal would make close-with-grace exit at once).
    detached: true
  })
  const prefix = `${s.name.padEnd(15)}|`
  for (const stream of [child.stdout, child.stderr]) {
    let rest = ''
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) process.stdout.write(`${show(line, s.name, prefix)}\n`)
    })
  }
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${prefix} exited (${signal ?? code}); stopping the stack`)
      void stopAll(1)
    }
  })
  children.push(child)
}

/** A service's line: prettified, or its JSON as it is; anything else (a crash's output) behind the service's name. */
function show(line: string, service: string, prefix: string): string {
  if (pretty) return pretty(line, service)
  return line.startsWith('{') ? line : `${prefix} ${line}`
}

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health`)).ok
  } catch {
    return false
  }
}

const deadline = Date.now() + 60_000
const pending = new Set(services)
while (pending.size && Date.now() < deadline && !stopping) {
  for (const s of [...pending]) if (await healthy(s.port)) pending.delete(s)
  if (pending.size) await new Promise((r) => setTimeout(r, 250))
}
if (!stopping) {
  console.log('\nSession platform is up:')
  for (const s of services) {
    const state = pending.has(s) ? 'NOT HEALTHY' : 'healthy'
    console.log(`  ${s.name.padEnd(15)} http://127.0.0.1:${s.port}  (${state})`)
  }
  console.log('Mint a token with: pnpm run token --sub u1 --roles user. Ctrl-C stops everything.\n')
}

async function stopAll(code: number) {
  if (stopping) return
  stopping = true
  console.log('\nstopping all services...')
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve()
          const force = setTimeout(() => c.kill('SIGKILL'), 20_000)
          c.once('exit', () => {
            clearTimeout(force)
            resolve()
          })
          c.kill('SIGTERM')
        })
    )
  )
  process.exit(code)
}
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})
process.on('SIGINT', () => void stopAll(0))
process.on('SIGTERM', () => void stopAll(0))
