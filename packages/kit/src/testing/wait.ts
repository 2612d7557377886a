/** Polls until `check` returns a truthy value; fails with the last value seen after `timeoutMs`. */
export type Truthy<T> = Exclude<T, null | undefined | false | 0 | ''>

export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 10_000, intervalMs = 50): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      last = await check()
      if (last) return last as Truthy<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`waitFor timed out after ${timeoutMs} ms; last value: ${String(last)}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
