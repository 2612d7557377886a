import t from 'tap'
import { Type } from 'typebox'
import { ConfigError, defineService, serviceConfig, type ServiceConfig } from '../src/index.js'
import { buildService, sharedResources } from '../src/testing/index.js'

const ConfigSchema = serviceConfig({ port: 0, schema: 'demo', name: 'demo' }, { DEMO_LIMIT: Type.Integer({ default: 3 }) })
type Config = ServiceConfig & { DEMO_LIMIT: number }

/** A service with no external clients: what defineService adds is all there is to see. */
function demo(steps: string[], parts: Partial<Parameters<typeof defineService<{ config: Config; tag?: string }>>[0]> = {}) {
  return defineService<{ config: Config; tag?: string }>({
    platform: () => ({}),
    async plugins(fastify, { config, tag }) {
      steps.push(`plugins ${config.DEMO_LIMIT} ${tag ?? '-'}`)
      fastify.decorate('demoLimit', config.DEMO_LIMIT)
    },
    async routes(fastify) {
      steps.push(`routes ${fastify.hasDecorator('readiness') && fastify.hasDecorator('authenticate')}`)
      fastify.get('/limit', async () => ({ limit: fastify.getDecorator<number>('demoLimit') }))
    },
    ...parts
  })
}

t.test('config check, kit plugins, service plugins, routes: in that order, with the options a test injects', async (t) => {
  const steps: string[] = []
  const { app } = await buildService(t, {
    app: demo(steps, { check: (config) => void steps.push(`check ${config.DEMO_LIMIT}`) }),
    configSchema: ConfigSchema,
    shared: await sharedResources(t, { prefix: 'kit' }),
    env: { DEMO_LIMIT: '7' },
    options: { tag: 'injected' }
  })
  t.same(steps, ['check 7', 'plugins 7 injected', 'routes true'], 'routes see the kit (readiness, auth) and the service plugins')
  t.same((await app.inject('/limit')).json(), { limit: 7 })
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { status: 'healthy', checks: {} })
  t.match(health.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'every reply names its request')
  t.equal((await app.inject('/ready')).statusCode, 200)
})

t.test('a rule across variables stops the boot with a ConfigError naming them', async (t) => {
  const app = demo([], {
    check: (config) => {
      if (config.DEMO_LIMIT > 5) throw new ConfigError([`DEMO_LIMIT: at most 5 (got ${config.DEMO_LIMIT})`])
    }
  })
  await t.rejects(
    buildService(t, { app, configSchema: ConfigSchema, shared: await sharedResources(t, { prefix: 'kit' }), env: { DEMO_LIMIT: '9' } }),
    { name: 'ConfigError', problems: ['DEMO_LIMIT: at most 5 (got 9)'] }
  )
})

t.test('a service /health of its own, /metrics for allowed callers only, and a bound on the URL', async (t) => {
  const app = defineService<{ config: Config }>({
    platform: ({ config }) => ({
      health: {
        response: { 200: Type.Object({ limit: Type.Integer() }), 503: Type.Object({ limit: Type.Integer() }) },
        report: async (server) => {
          const limit = server.getDecorator<number>('demoLimit')
          return { statusCode: limit > 5 ? 503 : 200, body: { limit } }
        }
      },
      metrics: { allow: (request) => request.headers['x-metrics'] === 'yes' },
      maxUrlLength: 20 + config.DEMO_LIMIT
    }),
    plugins: async (fastify, { config }) => void fastify.decorate('demoLimit', config.DEMO_LIMIT),
    routes: async () => {}
  })
  const built = await buildService(t, {
    app,
    configSchema: ConfigSchema,
    shared: await sharedResources(t, { prefix: 'kit' }),
    env: { DEMO_LIMIT: '6' }
  })
  const health = await built.app.inject('/health')
  t.same([health.statusCode, health.json()], [503, { limit: 6 }], 'the report is read per request, from decorators registered later')

  const refused = await built.app.inject('/metrics')
  t.equal(refused.statusCode, 403)
  t.match(refused.json(), { code: 'FORBIDDEN', message: 'Metrics are not available from this address' })
  t.equal((await built.app.inject({ url: '/metrics', headers: { 'x-metrics': 'yes' } })).statusCode, 200)

  const long = await built.app.inject(`/health?${'q'.repeat(20)}`)
  t.equal(long.statusCode, 414)
  t.match(long.json(), { code: 'URI_TOO_LONG', message: 'The path and query are longer than the 26 characters accepted' })
  t.equal((await built.app.inject(`/health?${'q'.repeat(18)}`)).statusCode, 503, '26 characters exactly pass')
})
