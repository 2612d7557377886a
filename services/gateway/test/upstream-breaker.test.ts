import { test } from 'tap'
import type { BreakerState } from '@platform/contracts'
import { testClock } from '@platform/kit/testing'
import { Breaker, type BreakerOptions } from '../src/upstreams/breaker.js'

/** A breaker on its own, its moves recorded; `moved(state)` resolves when it next reaches that state. */
function breaker(t: { teardown(fn: () => unknown): void }, opts: Partial<BreakerOptions> = {}) {
  const moves: BreakerState[] = []
  const waiting: Array<{ state: BreakerState; resolve: () => void }> = []
  const b = new Breaker({
    failureThreshold: 3,
    errorPercentage: 50,
    minVolume: 10,
    windowMs: 600_000,
    recoveryMs: 60_000,
    onState: (state) => {
      moves.push(state)
      for (const w of waiting.filter((w) => w.state === state)) {
        waiting.splice(waiting.indexOf(w), 1)
        w.resolve()
      }
    },
    ...opts
  })
  t.teardown(() => b.close())
  // The breaker's timers are unref'd (they never hold a server open); this deadline keeps the test's process alive meanwhile.
  const moved = (state: BreakerState) =>
    new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`the breaker did not move to ${state} within 20 s`)), 20_000)
      waiting.push({
        state,
        resolve: () => {
          clearTimeout(deadline)
          resolve()
        }
      })
    })
  return { b, moves, moved }
}

/** One call through the breaker that succeeds or fails. */
const call = (b: Breaker, ok: boolean) => {
  if (!b.acquire()) return 'refused'
  if (ok) b.success()
  else b.failure()
  return ok ? 'ok' : 'failed'
}

test('failures in a row open it; a success between them starts the count again', async (t) => {
  const { b, moves } = breaker(t)
  t.same([call(b, false), call(b, false), call(b, true), call(b, false), call(b, false)], ['failed', 'failed', 'ok', 'failed', 'failed'])
  t.equal(b.state, 'closed')
  t.equal(call(b, false), 'failed')
  t.equal(b.state, 'open', 'the third in a row')
  t.equal(b.available, false)
  t.equal(call(b, true), 'refused', 'nothing goes through while open')
  t.same(moves, ['open'])
})

test('the failure share opens it once the window holds the minimum volume, at the percentage itself', async (t) => {
  const { b } = breaker(t, { failureThreshold: 100 })
  for (let i = 0; i < 4; i++) {
    call(b, true)
    call(b, false)
  }
  t.equal(b.state, 'closed', '4 of 8: under the minimum volume')
  call(b, true)
  call(b, false)
  t.equal(b.state, 'open', '5 of 10 is 50 %')
})

test('after the recovery time one probe goes through: its success closes it', async (t) => {
  const clock = testClock().freeze()
  const { b, moves, moved } = breaker(t, { failureThreshold: 1, recoveryMs: 30, now: clock.now })
  // Waiting starts before the breaker opens: its recovery timer may fire before the next line on a busy machine.
  const halfOpen = moved('half_open')
  call(b, false)
  t.equal(b.retryAfterSeconds(), 0.03)
  clock.advance(20)
  t.equal(b.retryAfterSeconds(), 0.01, 'counts down on its clock')
  await halfOpen
  t.equal(b.available, true)
  t.equal(b.acquire(), true, 'the probe')
  t.equal(b.available, false, 'one probe only')
  t.equal(b.acquire(), false)
  t.equal(b.retryAfterSeconds(), 1, 'while the probe is out')
  b.success()
  t.equal(b.state, 'closed')
  t.same(moves, ['open', 'half_open', 'closed'])
})

test('a failed probe opens it again, with a new recovery time', async (t) => {
  const { b, moves, moved } = breaker(t, { failureThreshold: 1, recoveryMs: 30 })
  const firstProbe = moved('half_open')
  call(b, false)
  await firstProbe
  const secondProbe = moved('half_open')
  t.equal(call(b, false), 'failed')
  t.equal(b.state, 'open')
  await secondProbe
  t.same(moves, ['open', 'half_open', 'open', 'half_open'])
})

test('run: counts a rejection unless told it says nothing of the dependency, and refuses while open', async (t) => {
  const { b } = breaker(t, { failureThreshold: 2 })
  const refusal = Object.assign(new Error('413 while the body came'), { code: 'UPSTREAM_REFUSED' })
  const neutral = (err: unknown) => !(err instanceof Error && 'code' in err && err.code === 'UPSTREAM_REFUSED')
  for (let i = 0; i < 3; i++)
    await t.rejects(
      b.run(() => Promise.reject(refusal), neutral),
      refusal
    )
  t.equal(b.state, 'closed', 'a refusal is an answer')
  t.equal(await b.run(() => Promise.resolve('answer')), 'answer')
  for (let i = 0; i < 2; i++) await t.rejects(b.run(() => Promise.reject(new Error('down'))))
  t.equal(b.state, 'open')
  await t.rejects(
    b.run(() => Promise.resolve('never')),
    { code: 'EOPENBREAKER' }
  )
})
