import t from 'tap'
import { bearer, collectEvents, startNatsServer, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

const titleOf = (data: unknown) => (typeof data === 'object' && data !== null && 'title' in data ? data.title : undefined)

t.test('events wait in the outbox while NATS is down and arrive once each, in order, when it returns', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { app, config, schema } = await build(t, { NATS_URL: nats.url, OUTBOX_BATCH_SIZE: '10' })
  const h = bearer(testToken('u1'))
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.nats === 'up')
  const collector = await collectEvents(nats.url, config.NATS_NAMESPACE, 'sessions')
  t.teardown(() => collector.close())

  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'before' } })
  await waitFor(() => collector.events.length === 1)

  await nats.stop()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.nats === 'down')
  const titles: string[] = []
  for (let i = 0; i < 25; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: `during ${i}` } })
    t.equal(res.statusCode, 201, 'HTTP keeps working while NATS is down')
    titles.push(`during ${i}`)
  }
  await app.inject({ method: 'POST', url: '/api/v1/sessions/active/before', headers: h })
  t.equal(await app.outbox.drain(), 0, 'a relay pass while NATS is down publishes nothing')
  const { rows } = await schema.query('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL')
  t.equal(rows[0]!.n, 26, 'the backlog waits in the outbox')

  await nats.start()
  await waitFor(() => collector.events.length === 27, 20_000)
  t.same(
    collector.events.map((e) => [e.type, titleOf(e.data)]),
    [['sessions.named.created', 'before'], ...titles.map((title) => ['sessions.named.created', title]), ['sessions.named.activated', 'before']],
    'every event arrived, in the order of the changes'
  )
  // The relay marks a batch sent after the stream has it: consumers may see it first.
  await waitFor(async () => (await schema.query('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL')).rows[0]!.n === 0, 20_000)
  t.pass('the outbox drained')
  // Deliveries are the broker's business (a killed server may deliver again what it never saw acked); what
  // the outbox promises is that the stream holds each event once.
  t.equal(await collector.stored(), 27, 'none was published twice')
  t.equal(new Set(collector.events.map((e) => e.id)).size, 27)
})

t.test('a relay that publishes but fails to mark sent republishes with the same Nats-Msg-Id: no duplicate reaches consumers', async (t) => {
  const { app, config, schema } = await build(t)
  const h = bearer(testToken('u2'))
  const collector = await collectEvents(config.NATS_URL, config.NATS_NAMESPACE, 'sessions')
  t.teardown(() => collector.close())
  await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: h, payload: { title: 'x' } })
  await waitFor(() => collector.events.length === 1)
  // As if the relay crashed after publishing and before its commit.
  await schema.query('UPDATE outbox SET sent_at = NULL')
  t.equal(await app.outbox.drain(), 1, 'published again')
  await waitFor(() => collector.settled(), 20_000)
  t.equal(await collector.stored(), 1, 'the stream kept one copy')
  t.equal(collector.deliveries, 1)
  t.equal(collector.events.length, 1)
})
