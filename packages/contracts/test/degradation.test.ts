import { test } from 'tap'
import { addDegradation, degradationHeaders, DegradationReasons, joinDegradation, type DegradationTarget } from '../src/index.js'

const REDIS = 'Redis unavailable: limits counted per instance'
const CACHE = 'Cache unavailable: answered from the database'

/** A reply's headers in a Map, for the helpers alone. */
function fakeReply(): DegradationTarget & { headers: Map<string, string> } {
  const headers = new Map<string, string>()
  return { headers, getHeader: (name) => headers.get(name), header: (name, value) => headers.set(name, value) }
}

test('every reason is one printable ASCII sentence without ";", fit for a header', async (t) => {
  for (const [mode, reason] of Object.entries(DegradationReasons)) {
    t.match(reason, /^[\x20-\x7e]+$/, `${mode}: printable ASCII`)
    t.notOk(reason.includes(';'), `${mode}: no ";", which joins reasons`)
  }
  t.equal(DegradationReasons.rate_limit_local, REDIS)
  t.equal(DegradationReasons.cache_unavailable, CACHE)
})

test('a mode and its reason are added once, and another reply modes and reasons are joined in order', async (t) => {
  const reply = fakeReply()
  addDegradation(reply, 'rate_limit_local')
  addDegradation(reply, 'rate_limit_local')
  t.same(
    [...reply.headers],
    [
      ['x-degradation-mode', 'rate_limit_local'],
      ['x-degradation-reason', REDIS]
    ]
  )
  joinDegradation(reply, 'cache_unavailable, rate_limit_local', `${CACHE}; ${REDIS}`)
  t.equal(reply.headers.get('x-degradation-mode'), 'rate_limit_local, cache_unavailable')
  t.equal(reply.headers.get('x-degradation-reason'), `${REDIS}; ${CACHE}`)

  const bare = fakeReply()
  joinDegradation(bare, 'cache_unavailable, something_new')
  t.equal(bare.headers.get('x-degradation-mode'), 'cache_unavailable, something_new')
  t.equal(bare.headers.get('x-degradation-reason'), `${CACHE}; Degraded: something_new`, 'without reasons: the table, or a generic one')
})

test('both headers for a list of modes, and none for an empty list', async (t) => {
  t.same(degradationHeaders(['rate_limit_local', 'cache_unavailable']), {
    'x-degradation-mode': 'rate_limit_local, cache_unavailable',
    'x-degradation-reason': `${REDIS}; ${CACHE}`
  })
  t.same(degradationHeaders([]), {})
})
