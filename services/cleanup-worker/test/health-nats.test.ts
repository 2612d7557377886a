import t from 'tap'
import { startNatsServer, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

t.test('health: degraded while NATS is unreachable (run events wait in the outbox), healthy once it is back', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { app } = await build(t, { NATS_URL: nats.url })
  const health = async () => {
    const res = await app.inject({ method: 'GET', url: '/health' })
    return { code: res.statusCode, status: res.json().status, reasons: res.json().reasons }
  }
  t.same(await health(), { code: 200, status: 'healthy', reasons: [] })

  await nats.stop()
  const down = await waitFor(async () => {
    const h = await health()
    return h.status === 'degraded' ? h : null
  }, 15_000)
  t.same(down, { code: 200, status: 'degraded', reasons: ['NATS is unreachable: run events wait in the outbox'] }, 'liveness stays 200')
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).json().checks.nats, 'down')

  await nats.start()
  await waitFor(async () => (await health()).status === 'healthy', 15_000)
  t.same(await health(), { code: 200, status: 'healthy', reasons: [] })
})
