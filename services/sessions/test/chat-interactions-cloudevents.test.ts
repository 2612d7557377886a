import t from 'tap'
import { bearer, publishEvents, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

const service = bearer(testToken('gateway', ['service']))

t.test('chat interactions from other producers: any id, counted once per (source, id) whatever the content mode', async (t) => {
  const { app, schema, config } = await build(t)
  await app.inject({
    method: 'POST',
    url: '/internal/login-sessions/resolve',
    headers: service,
    payload: { sid: 'ce-sid', userId: 'judy', ip: '10.0.0.1', userAgent: 'curl/8' }
  })
  const data = {
    chatSessionId: '0b6c7c7e-4b0e-4a52-9d8e-1f9a1c2b3d4e',
    messageId: '1',
    seq: 1,
    sender: 'user',
    userId: 'judy',
    userType: 'client',
    loginSessionId: 'ce-sid',
    contentLength: 5,
    createdAt: '2026-01-01T00:00:00.000Z'
  }
  const attributes = { specversion: '1.0', id: 'msg-1', source: 'https://chat.example/bridge', type: 'chat.events.message.created' }
  const subject = 'chat.events.message.created'
  await waitFor(() => app.chatInteractions.running)
  await publishEvents(config.NATS_URL, config.NATS_NAMESPACE, [
    // Binary mode: attributes in ce- headers, no time, no datacontenttype.
    { subject, payload: data, headers: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [`ce-${k}`, v])) },
    // The same event in structured mode: a duplicate.
    { subject, payload: { ...attributes, data }, headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' } },
    // The same id from another source is another event.
    { subject, payload: { ...attributes, source: '/chat', data } },
    { subject, payload: { ...attributes, source: '/chat', data } }
  ])
  await waitFor(() => app.chatInteractions.stats.processed === 4, 10_000)
  t.equal(app.chatInteractions.stats.deadLettered, 0)
  const { rows } = await schema.query(`SELECT chat_interactions FROM login_sessions WHERE id = 'ce-sid'`)
  t.equal(rows[0]!.chat_interactions, 2)
  const processed = await schema.query('SELECT source, id FROM processed_events ORDER BY source, id')
  t.same(processed.rows, [
    { source: '/chat', id: 'msg-1' },
    { source: 'https://chat.example/bridge', id: 'msg-1' }
  ])
})
