/**
 * Starts every service under services/ (each with a src/server.ts), prefixes their logs, prints
 * where each listens once healthy, and on Ctrl-C stops them all gracefully.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..', '..')
const services = readdirSync(join(root, 'services'))
  .filter((name) => existsSync(join(root, 'services', name, 'src', 'server.ts')))
  .map((name) => {
    const pkg = JSON.parse(readFileSync(join(root, 'services', name, 'package.json'), 'utf8'))
    return { name, port: Number(process.env[`${name.toUpperCase().replace(/-/g, '_')}_PORT`] ?? pkg.platform?.port) }
  })
  .sort((a, b) => a.port - b.port)

const children: ChildProcess[] = []
let stopping = false

for (const s of services) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(root, 'services', s.name),
    env: { ...process.env, PORT: String(s.port) },
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
      for (const line of lines) process.stdout.write(`${prefix} ${line}\n`)
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
