import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from './wait.js'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** A server process of the test's own that it may stop and start again on the same port. */
export interface Throwaway {
  url: string
  port: number
  start(): Promise<void>
  /** Kills it (SIGKILL unless told: SIGTERM lets it shut down cleanly) and waits until its port is closed. */
  stop(signal?: NodeJS.Signals): Promise<void>
  /** SIGSTOP: the kernel still accepts connections, the server never answers (a frozen server). */
  freeze(): void
  /** SIGCONT after `freeze`. */
  thaw(): void
  /** Stops it for good and removes its files. */
  dispose(): Promise<void>
}

function throwaway(port: number, url: string, command: string, args: string[], cleanup: () => Promise<void>): Throwaway {
  let child: ChildProcess | null = null
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const c = child
    child = null
    if (!c || c.exitCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      // A stopped process would never act on SIGTERM.
      if (signal !== 'SIGKILL') c.kill('SIGCONT')
      c.kill(signal)
    })
    await waitFor(async () => !(await portOpen(port)), 5000)
  }
  const start = async () => {
    if (child) return
    child = spawn(command, args, { stdio: 'ignore' })
    await waitFor(() => portOpen(port), 10_000)
  }
  const signal = (name: NodeJS.Signals) => {
    if (!child || child.exitCode !== null) throw new Error(`${command} is not running`)
    child.kill(name)
  }
  return {
    url,
    port,
    start,
    stop,
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    dispose: async () => {
      await stop()
      await cleanup()
    }
  }
}

/** A redis-server on a free port that keeps nothing on disk. */
export async function startRedisServer(): Promise<Throwaway> {
  const port = await freePort()
  const t = throwaway(
    port,
    `redis://127.0.0.1:${port}`,
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    async () => {}
  )
  await t.start()
  return t
}

/** A nats-server with JetStream on a free port; its store survives stop/start, like a real restart. */
export async function startNatsServer(): Promise<Throwaway> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'nats-test-'))
  const t = throwaway(
    port,
    `nats://127.0.0.1:${port}`,
    'nats-server',
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store')],
    () => rm(dir, { recursive: true, force: true })
  )
  await t.start()
  return t
}

const repoRoot = join(import.meta.dirname, '..', '..', '..', '..')

/** A service of this repo running as its own process, as in production. */
export interface ServiceProcess {
  url: string
  port: number
  child: ChildProcess
  /** SIGTERM (or `signal`), then the exit code once the process has gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/**
 * Starts `services/<name>/src/server.ts` on a free loopback port with `env` (a test's own schema, key
 * prefix, namespace...) and waits until /health answers. Tests use it where one service needs another:
 * services never import each other, not even in tests.
 */
export async function startServiceProcess(name: string, env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${name}/src/server.ts`], {
    cwd: repoRoot,
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env, PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  const url = `http://127.0.0.1:${port}`
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
      const force = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.once('exit', (code) => {
        clearTimeout(force)
        resolve(code)
      })
      child.kill(signal)
    })
  try {
    await waitFor(async () => child.exitCode === null && (await fetch(`${url}/health`)).ok, 30_000, 100)
  } catch (err) {
    await stop('SIGKILL')
    throw err
  }
  return { url, port, child, stop }
}
