import { test } from 'tap'
import { PublicApi } from '@platform/contracts'
import { startRedisServer, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'
import { startUpstream } from './upstream.js'

async function allUp(t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const urls = {
    SESSIONS_URLS: (await startUpstream(t, 'sessions')).url,
    TASK_SESSIONS_URLS: (await startUpstream(t, 'task-sessions')).url,
    CHAT_URLS: (await startUpstream(t, 'chat')).url,
    CLEANUP_WORKER_URLS: (await startUpstream(t, 'cleanup-worker')).url
  }
  return build(t, { ...urls, ...env })
}

const health = async (app: Awaited<ReturnType<typeof build>>['app']) => {
  const res = await app.inject({ method: 'GET', url: '/health' })
  return { status: res.statusCode, body: res.json() }
}

test('/health reports every upstream, Redis and NATS', async (t) => {
  const { app } = await allUp(t)
  await waitFor(async () => (await health(app)).body.nats === 'up')
  const { status, body } = await health(app)
  t.equal(status, 200)
  t.equal(body.status, 'healthy')
  t.equal(body.redis, 'up')
  t.equal(body.nats, 'up')
  t.match(body.timestamp, /^\d{4}-\d\d-\d\dT/)
  t.type(body.uptime, 'number')
  t.same(Object.keys(body.services).sort(), ['chat', 'cleanup-worker', 'sessions', 'task-sessions'])
  for (const s of Object.values(body.services) as Array<{ status: string; breaker: string; latencyMs: number; instances: unknown[] }>) {
    t.equal(s.status, 'up')
    t.equal(s.breaker, 'closed')
    t.ok(s.latencyMs >= 0 && s.latencyMs < 300)
    t.equal(s.instances.length, 1)
  }
})

test('/health is degraded while a service is down, unhealthy when all are', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url })
  const partly = await health(app)
  t.equal(partly.status, 200)
  t.equal(partly.body.status, 'degraded')
  t.same(partly.body.services.chat, {
    status: 'down',
    breaker: 'closed',
    latencyMs: null,
    instances: [{ url: partly.body.services.chat.instances[0].url, status: 'down', breaker: 'closed', latencyMs: null }]
  })
  await sessions.stop()
  const none = await health(app)
  t.equal(none.status, 503)
  t.equal(none.body.status, 'unhealthy')
})

test('/health is degraded while Redis is down; /ready stays ready (limits fall back)', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const { app } = await allUp(t, { REDIS_URL: redis.url })
  await waitFor(async () => (await health(app)).body.status === 'healthy')
  await redis.stop()
  const { body } = await health(app)
  t.equal(body.status, 'degraded')
  t.equal(body.redis, 'down')
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().status, 'degraded')
  t.equal(ready.json().checks.redis, 'down')
})

test('/metrics exposes requests, upstream latency, breakers, retries, rejections and degradations', async (t) => {
  const { app } = await allUp(t)
  await app.inject({ method: 'GET', url: '/api/v1/sessions' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  for (const name of [
    'http_request_duration_seconds_count{method="GET",route="/api/v1/sessions",status_code="401"} 1',
    'gateway_circuit_breaker_state{service="chat"',
    '# TYPE gateway_upstream_duration_seconds histogram',
    '# TYPE gateway_retries_total counter',
    '# TYPE gateway_rate_limit_rejections_total counter',
    '# TYPE gateway_degradations_total counter',
    '# TYPE gateway_upstream_failures_total counter'
  ]) {
    t.ok(res.body.includes(name), name)
  }
})

test('METRICS_ALLOW restricts /metrics to the listed addresses', async (t) => {
  const { app } = await build(t, { METRICS_ALLOW: '10.0.0.0/8' })
  const refused = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'FORBIDDEN')
  const allowed = await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.2.3.4' })
  t.equal(allowed.statusCode, 200)
})

test('/docs/json is the OpenAPI document of every route in PublicApi; /docs is Swagger UI', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  const operations = Object.values(doc.paths as Record<string, Record<string, unknown>>).reduce((n, item) => n + Object.keys(item).length, 0)
  const contracts = Object.values(PublicApi).reduce((n, routes) => n + routes.length, 0)
  t.equal(operations, contracts, 'one operation per route contract')
  for (const [service, routes] of Object.entries(PublicApi)) {
    for (const r of routes) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase()]
      t.ok(op, `${r.method} ${r.path}`)
      t.equal(op?.['x-service'], service)
      t.same(op?.security, r.auth === 'none' ? [] : [{ bearer: [] }])
    }
  }
  const active = doc.paths['/api/v1/sessions/active'].get
  t.same(active.responses['200'].content['application/json'].schema, { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } })
  t.same(active.responses['429'].content['application/json'].schema, { $ref: '#/components/schemas/ErrorReply' })
  const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z0-9_]+/g) ?? []
  for (const ref of new Set(refs)) t.ok(doc.components.schemas[ref.split('/').pop() as string], `${ref} resolves`)

  const ui = await app.inject({ method: 'GET', url: '/docs' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
})
