import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { BoundHistogram, LazyChildLogger, fastifyOptions, metricsPlugin } from '../src/index.js'

/** A Fastify app built with the kit's options, logging JSON lines into `lines`. */
function appLoggingTo(level: string) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const { logger: _ignored, ...options } = fastifyOptions({ LOG_LEVEL: level, SERVICE_NAME: 'demo', BODY_LIMIT_BYTES: 1024 })
  const app = Fastify({ ...options, loggerInstance: undefined, logger: { level, stream } })
  return { app, lines }
}

t.test('a request logger writes with the request id at enabled levels only', async (t) => {
  const { app, lines } = appLoggingTo('warn')
  let logger: unknown
  app.get('/', async (request) => {
    logger = request.log
    request.log.info({ step: 1 }, 'not at warn')
    request.log.warn({ step: 2 }, 'kept')
    request.log.child({ part: 'inner' }).error('from a child')
    return 'ok'
  })
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'req-1' } })
  t.equal(res.statusCode, 200)
  t.ok(logger instanceof LazyChildLogger, 'requests get the lazy logger')
  t.same(
    lines.map((l) => [l.level, l.msg, l.reqId, l.step, l.part]),
    [
      [40, 'kept', 'req-1', 2, undefined],
      [50, 'from a child', 'req-1', undefined, 'inner']
    ]
  )
})

t.test('a request logger follows a level change and reports its level', async (t) => {
  const { app, lines } = appLoggingTo('info')
  app.get('/', async (request) => {
    t.equal(request.log.level, 'info')
    request.log.debug('hidden')
    request.log.level = 'debug'
    t.equal(request.log.level, 'debug')
    request.log.debug('shown')
    return 'ok'
  })
  t.teardown(() => app.close())
  await app.inject({ url: '/', headers: { 'x-request-id': 'req-2' } })
  t.same(
    lines.filter((l) => l.reqId === 'req-2' && l.level === 20).map((l) => l.msg),
    ['shown']
  )
})

t.test('a bound histogram renders buckets, sum and count like prom-client', async (t) => {
  const registry = new Registry()
  const h = new BoundHistogram('demo_seconds', 'Demo durations', ['route', 'code'] as const, [0.1, 1], [registry])
  const fast = h.bind('/a', '200')
  fast(0.05)
  fast(0.1)
  fast(0.5)
  fast(3)
  h.bind('/a', '200')(0.2)
  h.bind('/b', '500')(2)
  t.equal(
    await registry.metrics(),
    [
      '# HELP demo_seconds Demo durations',
      '# TYPE demo_seconds histogram',
      'demo_seconds_bucket{le="0.1",route="/a",code="200"} 2',
      'demo_seconds_bucket{le="1",route="/a",code="200"} 4',
      'demo_seconds_bucket{le="+Inf",route="/a",code="200"} 5',
      'demo_seconds_sum{route="/a",code="200"} 3.85',
      'demo_seconds_count{route="/a",code="200"} 5',
      'demo_seconds_bucket{le="0.1",route="/b",code="500"} 0',
      'demo_seconds_bucket{le="1",route="/b",code="500"} 0',
      'demo_seconds_bucket{le="+Inf",route="/b",code="500"} 1',
      'demo_seconds_sum{route="/b",code="500"} 2',
      'demo_seconds_count{route="/b",code="500"} 1',
      ''
    ].join('\n')
  )
  registry.resetMetrics()
  t.match(await registry.metrics(), 'demo_seconds_count{route="/a",code="200"} 0')
})

t.test('the metrics plugin counts requests by method, route and status', async (t) => {
  const app = Fastify()
  await app.register(metricsPlugin)
  app.get('/items/:id', async (request, reply) => ((request.params as { id: string }).id === 'x' ? reply.code(404).send() : 'ok'))
  t.teardown(() => app.close())
  for (const id of ['1', '2', 'x']) await app.inject({ url: `/items/${id}` })
  await app.inject({ url: '/nowhere' })
  const text = (await app.inject({ url: '/metrics' })).body
  t.match(text, 'http_request_duration_seconds_count{method="GET",route="/items/:id",status_code="200"} 2')
  t.match(text, 'http_request_duration_seconds_count{method="GET",route="/items/:id",status_code="404"} 1')
  t.match(text, 'http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"} 1')
  t.notMatch(text, 'route="/metrics"')
})
