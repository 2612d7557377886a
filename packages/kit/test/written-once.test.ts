import t from 'tap'
import { createVerifier } from 'fast-jwt'
import { breakerState, createBreaker, decodeCursor, keyset, keysetPage, serviceTokens } from '../src/index.js'
import { TEST_JWT_SECRET, testClock } from '../src/testing/index.js'

const row = (iso: string, id: string) => ({ createdAt: new Date(iso), id })

t.test('keyset: the first page has no position; a cursor continues past its row in the order asked', async (t) => {
  t.same(keyset(undefined, 2, 'desc'), { where: {}, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: 3 })

  const rows = [
    row('2026-01-03T00:00:00.000Z', '00000000-0000-4000-8000-000000000003'),
    row('2026-01-02T00:00:00.000Z', '00000000-0000-4000-8000-000000000002'),
    row('2026-01-01T00:00:00.000Z', '00000000-0000-4000-8000-000000000001')
  ]
  const { page, nextCursor } = keysetPage(rows, 2)
  t.same(page, rows.slice(0, 2))
  t.ok(nextCursor)
  t.same(decodeCursor(nextCursor!), rows[1], 'the cursor names the last row of the page')
  t.same(keyset(nextCursor!, 2, 'desc').where, {
    OR: [{ createdAt: { lt: rows[1]!.createdAt } }, { createdAt: rows[1]!.createdAt, id: { lt: rows[1]!.id } }]
  })
  t.same(keyset(nextCursor!, 2, 'asc').where, {
    OR: [{ createdAt: { gt: rows[1]!.createdAt } }, { createdAt: rows[1]!.createdAt, id: { gt: rows[1]!.id } }]
  })
  t.same(keysetPage(rows.slice(0, 2), 2), { page: rows.slice(0, 2), nextCursor: null }, 'no row past the page: the last page')
})

t.test('keyset: serial ids decode to bigint; a cursor this API did not return is 400 INVALID_CURSOR', async (t) => {
  const cursor = keysetPage(
    [row('2026-01-01T00:00:00.000Z', '1'), row('2026-01-02T00:00:00.000Z', '2')].map((r) => ({ ...r, id: BigInt(r.id) })),
    1
  ).nextCursor!
  t.same(keyset(cursor, 1, 'asc', 'serial').where, {
    OR: [{ createdAt: { gt: new Date('2026-01-01T00:00:00.000Z') } }, { createdAt: new Date('2026-01-01T00:00:00.000Z'), id: { gt: 1n } }]
  })
  t.throws(() => keyset(cursor, 1, 'asc'), { code: 'INVALID_CURSOR', statusCode: 400 }, 'a serial cursor is not a uuid cursor')
  t.throws(() => keyset('not-a-cursor', 1, 'asc'), { code: 'INVALID_CURSOR', statusCode: 400 })
})

t.test('serviceTokens: one token until a fifth of its life is left, then a new one', async (t) => {
  const clock = testClock().freeze(Date.UTC(2026, 0, 1))
  const key = { secret: TEST_JWT_SECRET, issuer: 'platform', audience: 'services' }
  const token = serviceTokens({ key, sub: 'gateway', roles: ['service'], ttlSeconds: 300, now: clock.now })
  const first = token()
  const claims = createVerifier({ key: TEST_JWT_SECRET, allowedIss: 'platform', allowedAud: 'services', clockTimestamp: clock.now() })(first)
  t.match(claims, { sub: 'gateway', roles: ['service'], iss: 'platform', aud: 'services' })

  clock.advance(239_000)
  t.equal(token(), first, '61 s left of 300: still the same token')
  clock.advance(2_000)
  t.not(token(), first, '59 s left: signed again')
})

t.test('createBreaker: opens when the failure share reaches the percentage, ignores what it is told to, reports each state', async (t) => {
  const states: string[] = []
  const logged: string[] = []
  const log = { warn: (_o: object, msg: string) => logged.push(msg), info: (_o: object, msg: string) => logged.push(msg) }
  let fail = (_n: number): Error | null => null
  const breaker = createBreaker(
    async (n: number) => {
      const err = fail(n)
      if (err) throw err
      return n
    },
    {
      name: 'upstream',
      timeoutMs: false,
      errorPercentage: 50,
      volume: 4,
      windowMs: 60_000,
      resetMs: 60_000,
      ignore: (err) => err instanceof RangeError,
      log,
      onState: (s) => states.push(s)
    }
  )
  t.teardown(() => breaker.shutdown())

  t.equal(await breaker.fire(1), 1)
  fail = () => new RangeError('a caller mistake')
  await t.rejects(breaker.fire(2), RangeError)
  await t.rejects(breaker.fire(3), RangeError)
  t.equal(breakerState(breaker), 'closed', 'ignored errors do not count')

  // Ignored errors count as successes: after 1, 2, 3 and 4, three failures make 3 of 7 (43 %) and the fourth 4 of 8.
  fail = (n) => (n % 2 ? new Error('down') : null)
  t.equal(await breaker.fire(4), 4)
  for (const n of [5, 7, 9]) await t.rejects(breaker.fire(n), /down/)
  t.equal(breakerState(breaker), 'closed', '3 of 7 failed: below 50 %')
  t.same(states, [])
  await t.rejects(breaker.fire(11), /down/)
  t.equal(breakerState(breaker), 'open', '4 of 8 failed: exactly 50 % opens it')
  t.same(states, ['open'])
  t.same(logged, ['circuit breaker opened'])
  await t.rejects(breaker.fire(12), { code: 'EOPENBREAKER' }, 'open: calls fail fast')
})
