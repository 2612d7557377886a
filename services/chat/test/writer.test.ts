import t from 'tap'
import type { ChatMessageCreatedData } from '@platform/contracts'
import { build } from './helper.js'

t.test('appends arriving together share statements: gap-free seqs, ids in seq order, one event each', async (t) => {
  const { app, schema } = await build(t, { ASSISTANT_ENABLED: 'false' })
  const store = app.chatStore
  const author = { userId: 'u1', userType: 'client' as const, loginSessionId: 'L1' }
  const [a, b, closed] = await Promise.all([store.createSession(author), store.createSession(author), store.createSession(author)])
  await store.close(closed.id, 'user')
  const missing = '00000000-0000-4000-8000-000000000000'

  const cycle = [a.id, b.id, closed.id, missing]
  const targets = Array.from({ length: 60 }, (_, i) => cycle[i % cycle.length] ?? missing)
  const results = await Promise.all(
    targets.map((chatSessionId, i) => store.append({ chatSessionId, sender: 'user', content: `m${i}`, metadata: { i }, processingMs: null, author }))
  )
  t.strictSame(
    results.map((r) => (r.ok ? 'ok' : r.reason)),
    targets.map((id) => (id === missing ? 'not_found' : id === closed.id ? 'closed' : 'ok'))
  )
  for (const s of [a, b]) {
    const mine = results.flatMap((r, i) => (r.ok && targets[i] === s.id ? [r.message] : []))
    t.strictSame(
      mine.map((m) => m.seq),
      Array.from({ length: 15 }, (_, i) => i + 1),
      'seqs 1..15 in the order they were sent'
    )
    t.strictSame(
      mine.map((m) => m.content),
      mine.map((m) => `m${String(m.metadata.i)}`)
    )
    const ids = mine.map((m) => BigInt(m.id))
    t.ok(
      ids.every((id, i) => i === 0 || id > ids[i - 1]!),
      'ids grow with seq'
    )
  }
  const sessions = await schema.query<{ id: string; last_seq: number }>('SELECT id::text, last_seq FROM chat_sessions ORDER BY last_seq')
  t.strictSame(
    sessions.rows.map((r) => r.last_seq),
    [0, 15, 15]
  )
  const events = await schema.query<{ envelope: { id: string; data: ChatMessageCreatedData }; id: string }>(
    `SELECT id::text, envelope FROM outbox WHERE type = 'chat.events.message.created' ORDER BY seq`
  )
  t.equal(events.rows.length, 30, 'one event per stored message, none for refused ones')
  const byId = new Map(results.flatMap((r) => (r.ok ? [[r.message.id, r.message] as const] : [])))
  for (const row of events.rows) {
    const m = byId.get(row.envelope.data.messageId)
    if (!m) throw new Error(`event ${row.id} is for a message that was not stored`)
    t.equal(row.envelope.id, row.id)
    t.strictSame(row.envelope.data, {
      chatSessionId: m.chatSessionId,
      sender: 'user',
      userId: 'u1',
      userType: 'client',
      loginSessionId: 'L1',
      contentLength: m.content.length,
      messageId: m.id,
      seq: m.seq,
      createdAt: m.createdAt
    })
  }
})
