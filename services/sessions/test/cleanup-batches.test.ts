import t from 'tap'
import { inBatches } from '../src/domain/cleanup-batches.js'

/** A logger that keeps what it was told: level, fields, message. */
function recorder() {
  const lines: unknown[][] = []
  return {
    lines,
    log: { error: (...args: unknown[]) => lines.push(['error', ...args]), info: (...args: unknown[]) => lines.push(['info', ...args]) }
  }
}

/** A batch function that answers with `results` in turn: a count, or an error to throw. */
function script(results: Array<number | Error>) {
  let calls = 0
  const batch = async () => {
    const next = results[calls++] ?? 0
    if (next instanceof Error) throw next
    return next
  }
  return { batch, calls: () => calls }
}

t.test('batches run until one comes back short, and the run is logged with its counts', async (t) => {
  const { lines, log } = recorder()
  const { batch, calls } = script([10, 10, 3, 10])
  const result = await inBatches(log, 'login-session', 10, batch)
  t.match(result, { removed: 23, batches: 3, errors: 0 })
  t.equal(calls(), 3, 'the short batch ends the run')
  t.match(lines, [['info', { cleanup_count: 23, errors_encountered: 0 }, 'login-session cleanup finished']])
})

t.test('an empty first batch ends the run and counts no batch', async (t) => {
  const { batch } = script([0])
  t.match(await inBatches(recorder().log, 'named-session', 5, batch), { removed: 0, batches: 0, errors: 0 })
})

t.test('a failed batch is logged and tried again; three failures end the run', async (t) => {
  const { lines, log } = recorder()
  const boom = new Error('connection lost')
  const { batch, calls } = script([5, boom, 5, boom, boom, 5])
  const result = await inBatches(log, 'named-session', 5, batch)
  t.match(result, { removed: 10, batches: 2, errors: 3 })
  t.equal(calls(), 5, 'no batch after the third failure')
  t.same(
    lines.filter((l) => l[0] === 'error'),
    [
      ['error', { err: boom, batches: 1 }, 'named-session cleanup batch failed'],
      ['error', { err: boom, batches: 2 }, 'named-session cleanup batch failed'],
      ['error', { err: boom, batches: 2 }, 'named-session cleanup batch failed']
    ]
  )
})
