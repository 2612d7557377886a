import t from 'tap'
import { planFor, checkRunRequest, summarize, UnexpectedReplyError } from '../src/domain/kinds.js'
import { overdue, retryDelay, schedules, schedulerId } from '../src/domain/schedule.js'
import { decodeCursor, encodeCursor } from '@platform/kit'

const base = { SESSION_CLEANUP_INTERVAL_MINUTES: 15, CLEANUP_SCHEDULES: 'all' }

t.test('schedules: every kind at the default interval; named sessions only with an age; overrides and lists', async (t) => {
  t.same(schedules(base), [
    { kind: 'login_sessions', intervalMs: 900_000 },
    { kind: 'task_sessions', intervalMs: 900_000 },
    { kind: 'chat_sessions', intervalMs: 900_000 }
  ])
  t.same(
    schedules({ ...base, NAMED_SESSION_MAX_AGE_DAYS: 30, CHAT_SESSIONS_CLEANUP_INTERVAL_MINUTES: 0.01 }).map((s) => [s.kind, s.intervalMs]),
    [
      ['login_sessions', 900_000],
      ['task_sessions', 900_000],
      ['chat_sessions', 600],
      ['named_sessions', 900_000]
    ]
  )
  t.same(schedules({ ...base, CLEANUP_SCHEDULES: 'none' }), [])
  t.same(
    schedules({ ...base, CLEANUP_SCHEDULES: 'named_sessions,chat_sessions' }).map((s) => s.kind),
    ['chat_sessions'],
    'named still needs its age'
  )
  t.equal(schedulerId('task_sessions'), 'cleanup-task_sessions')
})

t.test('overdue after two intervals without success, counted from the start when there was none', async (t) => {
  const now = 1_000_000
  t.equal(overdue(now, new Date(now - 2000), 0, 1000), false, 'exactly two intervals is not yet overdue')
  t.equal(overdue(now, new Date(now - 2001), 0, 1000), true)
  t.equal(overdue(now, null, now - 1500, 1000), false)
  t.equal(overdue(now, null, now - 2500, 1000), true)
})

t.test('retry delays double from the base up to the cap', async (t) => {
  t.same(
    [1, 2, 3, 4, 5].map((n) => retryDelay(n, 100, 1000)),
    [100, 200, 400, 800, 1000]
  )
})

t.test('planning: ages go where a kind takes them; named sessions default to the configured age', async (t) => {
  t.same(planFor('login_sessions', { batchSize: 10 }), { target: 'sessions', path: '/internal/cleanup', body: { batchSize: 10 } })
  t.same(planFor('task_sessions', { batchSize: 10, olderThanSeconds: 0 }), {
    target: 'task-sessions',
    path: '/internal/cleanup',
    body: { olderThanSeconds: 0, batchSize: 10 }
  })
  t.same(planFor('named_sessions', { batchSize: 10, namedMaxAgeSeconds: 86400 }).body, { olderThanSeconds: 86400, batchSize: 10 })
  t.same(planFor('named_sessions', { batchSize: 10, namedMaxAgeSeconds: 86400, olderThanSeconds: 5 }).body, { olderThanSeconds: 5, batchSize: 10 })
  t.same(planFor('chat_sessions', { batchSize: 10 }), { target: 'chat', path: '/internal/cleanup', body: { batchSize: 10 } })
  t.throws(() => planFor('named_sessions', { batchSize: 10 }), { code: 'CLEANUP_AGE_REQUIRED', statusCode: 400 })
  t.throws(() => planFor('chat_sessions', { batchSize: 10, olderThanSeconds: 1 }), { code: 'CLEANUP_AGE_NOT_SUPPORTED', statusCode: 400 })
  t.equal(checkRunRequest('login_sessions', 60, undefined), 'login_sessions')
  t.throws(() => checkRunRequest('sessions', undefined, undefined), { code: 'UNKNOWN_CLEANUP_KIND', statusCode: 400 })
})

t.test('replies: checked against their contract and reduced to removed and errors', async (t) => {
  t.same(summarize('login_sessions', { removed: 3, batches: 1, errors: 1, durationMs: 9 }), {
    removed: 3,
    errors: 1,
    details: { removed: 3, batches: 1, errors: 1, durationMs: 9 }
  })
  t.same(summarize('chat_sessions', { expired: 2, removedSessions: 5, removedMessages: 40, batches: 2 }), {
    removed: 7,
    errors: 0,
    details: { expired: 2, removedSessions: 5, removedMessages: 40, batches: 2 }
  })
  t.throws(() => summarize('task_sessions', { removed: 3 }), UnexpectedReplyError)
  t.throws(() => summarize('login_sessions', { removed: -1, batches: 0, errors: 0, durationMs: 0 }), UnexpectedReplyError)
})

t.test('cursors round-trip and refuse anything else', async (t) => {
  const p = { createdAt: new Date('2026-01-01T00:00:00.123Z'), id: '6f9619ff-8b86-4d01-b42d-00cf4fc964ff' }
  t.same(decodeCursor(encodeCursor(p)), p)
  t.throws(() => decodeCursor('nope'), { code: 'INVALID_CURSOR' })
  t.throws(() => decodeCursor(Buffer.from('2026-01-01|x').toString('base64url')), { code: 'INVALID_CURSOR' })
})
