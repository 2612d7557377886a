import t from 'tap'
import Fastify from 'fastify'
import type { DependencyState } from '@platform/contracts'
import { healthPlugin, natsPlugin } from '../src/index.js'
import { startNatsServer, uniqueName, waitFor } from '../src/testing/index.js'

async function healthApp(t: { teardown(fn: () => unknown): void }) {
  const app = Fastify()
  await app.register(healthPlugin)
  t.teardown(() => app.close())
  return app
}

const get = async (app: Awaited<ReturnType<typeof healthApp>>, url: '/health' | '/ready') => {
  const res = await app.inject({ method: 'GET', url })
  const { uptime, timestamp, ...body } = res.json()
  if (url === '/health' && (typeof uptime !== 'number' || !(Date.parse(timestamp) > 0))) throw new Error(`bad /health reply: ${res.body}`)
  return { code: res.statusCode, ...body }
}

t.test('/health is liveness with each dependency; /ready refuses only for a required one', async (t) => {
  const app = await healthApp(t)
  const state: Record<string, DependencyState> = { postgres: 'up', redis: 'up', assistant: 'disabled' }
  app.readiness.add('postgres', { required: true, check: () => state.postgres! })
  app.readiness.add('redis', { required: false, check: () => state.redis! })
  app.readiness.add('assistant', { required: false, check: () => state.assistant! })
  await app.ready()

  const checks = () => ({ ...state })
  t.same(await get(app, '/health'), { code: 200, status: 'healthy', checks: checks() }, 'disabled is not down')
  t.same(await get(app, '/ready'), { code: 200, status: 'ready', checks: checks() })

  state.redis = 'down'
  t.same(await get(app, '/health'), { code: 200, status: 'degraded', checks: checks() })
  t.same(await get(app, '/ready'), { code: 200, status: 'degraded', checks: checks() })

  state.postgres = 'down'
  t.same(await get(app, '/health'), { code: 200, status: 'degraded', checks: checks() }, 'still 200: an outage never restarts the pod')
  t.same(await get(app, '/ready'), { code: 503, status: 'unavailable', checks: checks() })

  state.postgres = 'up'
  state.redis = 'up'
  t.same(await get(app, '/health'), { code: 200, status: 'healthy', checks: checks() })
})

t.test('/health answers when a check throws or never settles, counting it down', async (t) => {
  const app = await healthApp(t)
  app.readiness.add('broken', {
    required: true,
    check: () => {
      throw new Error('boom')
    }
  })
  app.readiness.add('hanging', { required: false, check: () => new Promise<DependencyState>(() => {}) })
  app.readiness.add('fine', { required: false, check: async (): Promise<DependencyState> => 'up' })
  await app.ready()
  t.same(await get(app, '/health'), { code: 200, status: 'degraded', checks: { broken: 'down', hanging: 'down', fine: 'up' } })
})

t.test('NATS counts: /health is degraded while NATS is down and healthy again after it returns', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const app = Fastify()
  await app.register(healthPlugin)
  await app.register(natsPlugin, { url: nats.url, namespace: uniqueName('h'), name: 'health-test', streams: [] })
  await app.ready()
  t.teardown(() => app.close())
  t.same(await get(app, '/health'), { code: 200, status: 'healthy', checks: { nats: 'up' } })

  await nats.stop()
  const down = await waitFor(async () => {
    const h = await get(app, '/health')
    return h.status === 'degraded' ? h : null
  }, 15_000)
  t.same(down, { code: 200, status: 'degraded', checks: { nats: 'down' } })
  t.same(await get(app, '/ready'), { code: 200, status: 'degraded', checks: { nats: 'down' } }, 'NATS is optional for readiness')

  await nats.start()
  await waitFor(async () => (await get(app, '/health')).status === 'healthy', 15_000)
  t.same(await get(app, '/health'), { code: 200, status: 'healthy', checks: { nats: 'up' } })
})
