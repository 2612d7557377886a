/**
 * A clock a test moves instead of sleeping: pass `clock.now` where the code under test takes a `now`
 * option. It reads real time plus what the test added, or, once frozen, only what the test sets.
 */
export interface TestClock {
  // Properties, not methods: tests pass them on detached (`now: clock.now`).
  now: () => number
  /** Moves the clock forward by `ms`. */
  advance: (ms: number) => void
  /** Stops the clock at `at` (default: its current reading); from then on only `advance` moves it. */
  freeze: (at?: number) => TestClock
}

export function testClock(): TestClock {
  let offset = 0
  let frozenAt: number | null = null
  const clock: TestClock = {
    now: () => frozenAt ?? Date.now() + offset,
    advance: (ms) => {
      if (frozenAt !== null) frozenAt += ms
      else offset += ms
    },
    freeze: (at = clock.now()) => {
      frozenAt = at
      return clock
    }
  }
  return clock
}

/**
 * A `sleep` option that waits for nothing: it records each wait (ms) and moves `clock`, if given, by it,
 * so a test asserts the exact delays a retry loop chose.
 */
export function recordedSleep(clock?: TestClock): { waits: number[]; sleep: (ms: number) => Promise<void> } {
  const waits: number[] = []
  return {
    waits,
    sleep: async (ms) => {
      waits.push(ms)
      clock?.advance(ms)
      // Still asynchronous, like a real wait: other work of the tick runs first.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }
}
