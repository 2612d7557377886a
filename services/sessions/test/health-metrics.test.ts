import t from 'tap'
import { bearer, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'

t.test('health, readiness and metrics', async (t) => {
  const { app } = await build(t)
  const ready = await waitFor(async () => {
    const r = (await app.inject({ method: 'GET', url: '/ready' })).json()
    return r.status === 'ready' ? r : null
  })
  t.same(ready, { status: 'ready', checks: { postgres: 'up', redis: 'up', nats: 'up', 'consumer:sessions-chat-interactions': 'up' } })
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200)
  const { uptime, timestamp, ...rest } = health.json()
  t.same(rest, { status: 'healthy', checks: ready.checks }, 'health reports every dependency from the readiness registry')
  t.type(uptime, 'number')
  t.ok(Date.parse(timestamp) > 0)

  await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer(testToken('m')) })
  await app.inject({ method: 'GET', url: '/api/v1/sessions' })
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /^text\/plain/)
  t.match(metrics.body, /http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/sessions",status_code="200"\} 1/)
  t.match(metrics.body, /http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/sessions",status_code="401"\} 1/)
  t.match(metrics.body, /process_resident_memory_bytes/)
  t.match(metrics.body, /outbox_backlog 0/)
})

t.test('request ids: a sane client id is kept, a bad one replaced, every reply carries it', async (t) => {
  const { app } = await build(t)
  const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'abc-123' } })
  t.equal(kept.headers['x-request-id'], 'abc-123')
  const replaced = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { 'x-request-id': 'bad id\n<script>' } })
  t.match(replaced.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.equal(replaced.json().requestId, replaced.headers['x-request-id'])
})
