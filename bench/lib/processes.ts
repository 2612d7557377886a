import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { waitFor } from '@platform/kit/testing'

export const repoRoot = join(import.meta.dirname, '..', '..')

/** Runs a TypeScript entry point (a service's server.ts or a bench server) as its own process. */
export async function startNode(entry: string, env: Record<string, string>, healthUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  await waitFor(async () => (await fetch(healthUrl)).ok, 30_000, 100)
  return child
}

export function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
  })
}
