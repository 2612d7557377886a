import { test } from 'tap'
import { GatewayHealthReply, PublicApi } from '@platform/contracts'
import { Compile } from 'typebox/compile'
import { startNatsServer, startRedisServer, waitFor } from '@platform/kit/testing'
import { build, deadUrl } from './helper.js'
import { startFrozenUpstream, startUpstream } from './upstream.js'

async function allUp(t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const urls = {
    SESSIONS_URLS: (await startUpstream(t, 'sessions')).url,
    TASK_SESSIONS_URLS: (await startUpstream(t, 'task-sessions')).url,
    CHAT_URLS: (await startUpstream(t, 'chat')).url,
    CLEANUP_WORKER_URLS: (await startUpstream(t, 'cleanup-worker')).url
  }
  // Upstreams that are up must count as up, however long a busy machine takes to answer a probe.
  return build(t, { ...urls, HEALTH_PROBE_TIMEOUT_MS: '10000', ...env })
}

const isHealthReply = Compile(GatewayHealthReply)

/** /health, its body held to the contract. */
const health = async (app: Awaited<ReturnType<typeof build>>['app']) => {
  const res = await app.inject({ method: 'GET', url: '/health' })
  const body: unknown = res.json()
  if (!isHealthReply.Check(body)) throw new Error(`/health answered outside its contract: ${res.body}`)
  return { status: res.statusCode, body }
}

/** One service's part of a /health answer (every service is always listed). */
const serviceOf = (body: GatewayHealthReply, name: string) => {
  const service = body.services[name]
  if (!service) throw new Error(`/health does not list ${name}`)
  return service
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
  t.same(body.reasons, [])
  for (const s of Object.values(body.services)) {
    t.equal(s.status, 'up')
    t.equal(s.breaker, 'closed')
    t.type(s.latencyMs, 'number')
    t.ok((s.latencyMs ?? -1) >= 0, 'a measured latency')
    t.equal(s.instances.length, 1)
    const [instance] = s.instances
    t.match(instance, { status: 'up', breaker: 'closed', lastProbe: { result: 'ok', statusCode: 200, latencyMs: s.latencyMs } })
    t.ok(Date.parse(instance!.lastProbe.at) > 0, 'the probe says when it was sent')
  }
})

test('/health: one instance of two down is degraded, naming it; both down is 503 unhealthy', async (t) => {
  const a = await startUpstream(t, 'sessions-a')
  const b = await startUpstream(t, 'sessions-b')
  const { app } = await allUp(t, { SESSIONS_URLS: `${a.url},${b.url}` })
  await waitFor(async () => (await health(app)).body.status === 'healthy')

  await a.stop()
  const partly = await health(app)
  t.equal(partly.status, 200)
  t.equal(partly.body.status, 'degraded')
  t.same(partly.body.reasons, [`sessions: ${a.url} is down (unreachable)`])
  const sessions = serviceOf(partly.body, 'sessions')
  t.equal(sessions.status, 'up', 'the service still answers through b')
  t.same(
    sessions.instances.map((i) => [i.url, i.status, i.breaker, i.lastProbe.result, i.lastProbe.statusCode, i.lastProbe.latencyMs === null]),
    [
      [a.url, 'down', 'closed', 'unreachable', null, true],
      [b.url, 'up', 'closed', 'ok', 200, false]
    ]
  )

  await b.stop()
  const none = await health(app)
  t.equal(none.status, 503)
  t.equal(none.body.status, 'unhealthy')
  t.same(none.body.reasons, ['sessions: every instance is down'])
  t.same(
    serviceOf(none.body, 'sessions').instances.map((i) => i.status),
    ['down', 'down']
  )
  t.equal(serviceOf(none.body, 'chat').status, 'up', 'the others still answer')

  await a.start()
  const back = await health(app)
  t.equal(back.status, 200)
  t.equal(back.body.status, 'degraded')
})

test('/health: a service with no instance answering is unhealthy while every other answers', async (t) => {
  const { app } = await allUp(t, { CHAT_URLS: await deadUrl() })
  const res = await health(app)
  t.equal(res.status, 503)
  t.equal(res.body.status, 'unhealthy')
  t.same(res.body.reasons, ['chat: every instance is down'])
})

test('/health: a frozen instance is down with a timed-out probe', async (t) => {
  const frozen = await startFrozenUpstream(t)
  const b = await startUpstream(t, 'sessions-b')
  // The frozen one times out whatever the limit; a generous one keeps the live one up on a busy machine.
  const { app } = await allUp(t, { SESSIONS_URLS: `${frozen.url},${b.url}`, HEALTH_PROBE_TIMEOUT_MS: '3000' })
  const res = await health(app)
  t.equal(res.body.status, 'degraded')
  t.match(serviceOf(res.body, 'sessions').instances[0], { url: frozen.url, status: 'down', lastProbe: { result: 'timeout', latencyMs: null } })
})

test('/health is degraded while NATS is down, and healthy again when it is back', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { app } = await allUp(t, { NATS_URL: nats.url })
  await waitFor(async () => (await health(app)).body.status === 'healthy')
  await nats.stop()
  const down = await waitFor(async () => {
    const res = await health(app)
    return res.body.nats === 'down' ? res : null
  })
  t.equal(down.status, 200)
  t.equal(down.body.status, 'degraded')
  t.same(down.body.reasons, ['nats is down'])
  await nats.start()
  await waitFor(async () => (await health(app)).body.status === 'healthy', 20_000)
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
  t.same(body.reasons, ['redis is down: rate limits are counted per instance'])
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
  const paths: Record<string, Record<string, unknown>> = doc.paths
  const operations = Object.values(paths).reduce((n, item) => n + Object.keys(item).length, 0)
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
  t.same(active.responses['200'].content['application/json'].schema, {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', format: 'uuid' } }
  })
  t.same(active.responses['429'].content['application/json'].schema, { $ref: '#/components/schemas/ErrorReply' })
  const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z0-9_]+/g) ?? []
  for (const ref of new Set(refs)) t.ok(doc.components.schemas[ref.slice(ref.lastIndexOf('/') + 1)], `${ref} resolves`)

  const ui = await app.inject({ method: 'GET', url: '/docs' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
})
