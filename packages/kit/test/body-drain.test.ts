import { connect } from 'node:net'
import t from 'tap'
import Fastify from 'fastify'
import { Type } from 'typebox'
import {
  MIN_SERVICE_DRAIN_BYTES,
  drainOptions,
  fastifyOptions,
  loadConfig,
  platformPlugins,
  serviceConfig,
  type ServiceConfig
} from '../src/index.js'
import { TEST_JWT_SECRET, bearer, drainMetrics, postBodiesWithFetch, testToken, type BodyCase, type FetchAnswer } from '../src/testing/index.js'

const KiB = 1024
const MiB = 1024 * 1024
const user = bearer(testToken('u1', ['user']))
const schema = serviceConfig({ port: 0, schema: 'demo', name: 'demo' }, {})

/** A service as the kit builds every one (fastifyOptions, platformPlugins) with one JSON route, on a port. */
async function service(t: Tap, env: Record<string, string> = {}) {
  const config = loadConfig(schema, { NODE_ENV: 'test', LOG_LEVEL: 'silent', JWT_SECRET: TEST_JWT_SECRET, ...env }) as ServiceConfig
  const app = Fastify(fastifyOptions(config))
  await app.register(platformPlugins, { config })
  app.post('/items', { schema: { body: Type.Object({ title: Type.String() }) } }, async (request, reply) => reply.code(201).send(request.body))
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url, ...drainMetrics(app) }
}

interface Tap {
  teardown(fn: () => unknown): void
}

const post = (url: string, cases: BodyCase[]) => postBodiesWithFetch(`${url}/items`, user.authorization, cases)

t.test('REQUEST_DRAIN_BYTES is twice the body limit, at least 20 MiB; REQUEST_DRAIN_TIMEOUT_MS is 5 s', async (t) => {
  const defaults = loadConfig(schema, {})
  t.same(drainOptions(defaults, defaults.BODY_LIMIT_BYTES), { maxBytes: 20 * MiB, timeoutMs: 5000 })
  t.equal(MIN_SERVICE_DRAIN_BYTES, 20 * MiB)
  t.same(drainOptions(defaults, 16 * MiB), { maxBytes: 32 * MiB, timeoutMs: 5000 })
  const set = loadConfig(schema, { REQUEST_DRAIN_BYTES: '0', REQUEST_DRAIN_TIMEOUT_MS: '250' })
  t.same(drainOptions(set, set.BODY_LIMIT_BYTES), { maxBytes: 0, timeoutMs: 250 })
})

t.test("Node's fetch sees a service's 413 for a body over BODY_LIMIT_BYTES, declared or streamed, not a reset", async (t) => {
  const { url, drained } = await service(t)
  const cases = [2 * MiB, 2 * MiB, 8 * MiB, 8 * MiB].map((size, i) => ({ size, how: i % 2 ? ('streamed' as const) : ('declared' as const) }))
  const answers = await post(url, cases)
  t.same(
    answers,
    answers.map((a) =>
      'failed' in a
        ? { failed: 'not an answer' }
        : {
            status: 413,
            connection: 'close',
            requestId: a.requestId,
            body: {
              error: 'Payload Too Large',
              message: `The body is larger than the ${MiB} bytes this route accepts`,
              code: 'PAYLOAD_TOO_LARGE',
              requestId: a.requestId
            }
          }
    )
  )
  const drain = await drained()
  t.equal(drain.ends.bytes, undefined, 'every body was under the bound: none was cut')
  t.ok(drain.bytes > 0)
})

t.test('a body that fits is read as usual, and its connection is kept', async (t) => {
  const { url, metric } = await service(t)
  const [answer] = await post(url, [{ size: 512 * KiB, how: 'streamed' }])
  t.equal((answer as FetchAnswer).status, 201)
  t.equal((answer as FetchAnswer).connection, 'keep-alive')
  t.equal(await metric('http_body_drains_total{end="complete"}'), 0)
})

/**
 * A client that ignores the answer and writes a chunked body without end until the server closes the
 * connection, keeping its own side open (half-open) while it writes; resolves with what it was answered.
 */
function flood(url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true })
    const chunk = Buffer.alloc(64 * KiB, 98)
    const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
    let response = ''
    const pump = () => {
      while (!socket.destroyed) if (!socket.write(framed)) return void socket.once('drain', pump)
    }
    socket.on('data', (d: Buffer) => (response += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => resolve(response))
    socket.write(
      `POST /items HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: ${user.authorization}\r\n` +
        'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n'
    )
    pump()
  })
}

t.test('an endless body is read at most REQUEST_DRAIN_BYTES past the 413, then the connection closes', async (t) => {
  const { url, drained } = await service(t, { BODY_LIMIT_BYTES: String(64 * KiB), REQUEST_DRAIN_BYTES: String(256 * KiB) })
  const response = await flood(url)
  t.equal(response.split('\r\n')[0], 'HTTP/1.1 413 Payload Too Large', 'the answer came before the close')
  t.match(response, /\r\nconnection: close\r\n/i)
  t.equal(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)).code, 'PAYLOAD_TOO_LARGE')
  const drain = await drained()
  t.same(drain.ends, { bytes: 1 }, 'cut by the byte bound')
  // A socket read is at most 64 KiB (plus chunk framing): the drain stops within one read past the bound.
  t.ok(drain.bytes > 256 * KiB && drain.bytes <= 320 * KiB + 64, `drained ${drain.bytes} bytes`)
})

t.test('an injected request (no socket) gets the same 413 and nothing to drain', async (t) => {
  const { app, metric } = await service(t, { BODY_LIMIT_BYTES: String(4 * KiB) })
  const res = await app.inject({
    method: 'POST',
    url: '/items',
    headers: { ...user, 'content-type': 'application/json' },
    payload: { title: 'x'.repeat(8 * KiB) }
  })
  t.equal(res.statusCode, 413)
  t.same(res.json(), {
    error: 'Payload Too Large',
    message: `The body is larger than the ${4 * KiB} bytes this route accepts`,
    code: 'PAYLOAD_TOO_LARGE',
    requestId: res.headers['x-request-id']
  })
  t.equal(await metric('http_body_drained_bytes_total'), 0)
})
