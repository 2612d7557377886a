import type { FastifyBaseLogger } from 'fastify'

export type ConsumerLog = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>

/** A pause that a waker can cut short (on stop). */
function sleeper() {
  let wakeUp: (() => void) | null = null
  let timer: NodeJS.Timeout | undefined
  return {
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        wakeUp = resolve
        timer = setTimeout(resolve, ms)
      }).finally(() => {
        wakeUp = null
      }),
    wake: () => {
      clearTimeout(timer)
      wakeUp?.()
    }
  }
}

export interface OutageGateDeps {
  /** Resolves false (never rejects) while the handler's database does not answer. */
  healthy: () => Promise<boolean>
  backoff: (n: number) => number
  log: ConsumerLog
  /** Told each change, for the paused gauge. */
  onChange: (paused: boolean) => void
}

/** The consumer's pause while the handler's database is unreachable. */
export interface OutageGate {
  readonly paused: boolean
  /** A handler met a database outage. */
  enter(err: unknown): void
  /** A handler committed: the database answers. */
  clear(): void
  /**
   * While paused: probes the database with backoff until it answers or `closing()`; between probes
   * `release(delay)` hands held messages back rather than let them time out here.
   */
  wait(release: (delayMs: number) => void, closing: () => boolean): Promise<void>
  /** Cuts a pause between probes short (on stop). */
  wake(): void
}

export function outageGate(deps: OutageGateDeps): OutageGate {
  const pause = sleeper()
  let paused = false
  let probes = 0
  const set = (value: boolean, err?: unknown) => {
    if (paused === value) return
    paused = value
    deps.onChange(value)
    if (value) deps.log.warn({ err }, 'database unavailable: event consumer paused')
    else deps.log.info('database available again: event consumer resumed')
  }
  return {
    get paused() {
      return paused
    },
    enter: (err) => set(true, err),
    clear: () => {
      probes = 0
      set(false)
    },
    wait: async (release, closing) => {
      while (paused && !closing()) {
        probes++
        await pause.sleep(deps.backoff(probes))
        if (closing()) return
        if (await deps.healthy()) return set(false)
        release(deps.backoff(probes))
      }
    },
    wake: pause.wake
  }
}
