import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { test } from 'tap'
import {
  TEST_JWT_SECRET,
  bearer,
  createTestSchema,
  postBodiesWithFetch,
  type BodyCase,
  type FetchAnswer,
  deleteRedisKeys,
  deleteStreams,
  startServiceProcess,
  testToken,
  uniqueName
} from '@platform/kit/testing'
import { build, type Tap } from './helper.js'
import { portOf } from './upstream.js'

const MiB = 1024 * 1024
const migrations = join(import.meta.dirname, '..', '..', 'sessions', 'prisma', 'migrations')
const user = bearer(testToken('u-body', ['user']))

/** The real sessions service as its own process (BODY_LIMIT_BYTES at its 1 MiB default) and a gateway in front. */
async function stack(t: Tap) {
  const schema = await createTestSchema(migrations, 'bodylimit')
  const ns = uniqueName('bl')
  const sessions = await startServiceProcess('sessions', {
    DATABASE_URL: schema.url,
    DATABASE_SCHEMA: schema.schema,
    DATABASE_POOL_SIZE: '2',
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET
  })
  t.teardown(async () => {
    await sessions.stop()
    await schema.drop()
    // Best effort: keys and streams under the test's own prefix and namespace never meet another test's; a leftover is no failure.
    await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => {})
    await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => {})
  })
  // The service is a real process on a busy machine: slow answers are never failures here.
  const gateway = await build(t, { SESSIONS_URLS: sessions.url, UPSTREAM_TIMEOUT_MS: '10000' }, { listen: true })
  const metrics = async () => (await gateway.app.inject({ method: 'GET', url: '/metrics' })).body
  return { url: gateway.url, sessions, metrics }
}

const post = (url: string, cases: BodyCase[]) => postBodiesWithFetch(`${url}/api/v1/sessions`, user.authorization, cases)

/**
 * The service's 413 as the client sees it through the gateway. (Connection: close or keep-alive, by
 * whether the gateway had read the whole body from the client before the service answered.)
 */
const refused = (a: FetchAnswer) => ({
  status: 413,
  connection: a.connection,
  requestId: a.requestId,
  body: {
    error: 'Payload Too Large',
    message: `The body is larger than the ${MiB} bytes this route accepts`,
    code: 'PAYLOAD_TOO_LARGE',
    requestId: a.requestId
  }
})

test("a body over the service's limit (under the gateway's) gets the service's 413 through the gateway, and never opens the breaker", async (t) => {
  const { url, metrics } = await stack(t)
  // 8 MiB: more than socket buffers hold, so the gateway is still sending long after the service answered.
  const sizes = [2 * MiB, 2 * MiB, 8 * MiB, 8 * MiB, 2 * MiB, 2 * MiB]
  const cases = sizes.map((size, i) => ({ size, how: i % 2 ? ('streamed' as const) : ('declared' as const) }))
  const answers = await post(url, cases)
  t.same(
    answers,
    answers.map((a) => ('failed' in a ? { failed: 'not an answer' } : refused(a))),
    'six 413 PAYLOAD_TOO_LARGE in the error shape, declared and streamed'
  )
  t.ok(answers.every((a) => 'requestId' in a && typeof a.requestId === 'string' && a.requestId.length > 0))

  const text = await metrics()
  t.notMatch(text, /gateway_upstream_failures_total\{service="sessions"/, 'no upstream failure was counted')
  t.match(text, /gateway_circuit_breaker_state\{service="sessions",instance="[^"]+"\} 0\n/, 'the breaker is still closed')
  const [created] = await post(url, [{ size: 64, how: 'declared' }])
  t.equal(created && 'status' in created ? created.status : created, 201, 'the next request reaches the service')
})

/**
 * A service that reads a request whole, then answers `/refuse/<status>` with that status and only part
 * of its body, and closes: the connection breaks before the answer is complete. It counts the requests.
 */
async function refusingUpstream(t: Tap) {
  let hits = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
      if (head.length - end - 4 < length) return
      hits++
      const status = /^[A-Z]+ \S*\/refuse\/(\d{3})/.exec(head)?.[1] ?? '400'
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{"error":"Ref`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${portOf(server)}`, hits: () => hits }
}

test('a 4xx whose connection breaks before its body is whole is still the answer: never a failure, never retried', async (t) => {
  const upstream = await refusingUpstream(t)
  const { app } = await build(t, { SESSIONS_URLS: upstream.url, CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2' })
  const send = (status: number, method: 'POST' | 'GET' = 'POST') =>
    app.inject({
      method,
      url: `/api/v1/sessions/refuse/${status}`,
      headers: { ...user, 'content-type': 'application/json', 'idempotency-key': `k-${status}-${method}` },
      ...(method === 'POST' ? { payload: { title: 'x'.repeat(2000) } } : {})
    })
  for (let i = 0; i < 3; i++) {
    const res = await send(413)
    t.equal(res.statusCode, 413)
    t.same(res.json(), {
      error: 'Payload Too Large',
      message: 'The body is larger than the sessions service accepts',
      code: 'PAYLOAD_TOO_LARGE',
      requestId: res.headers['x-request-id']
    })
  }
  const forbidden = await send(403, 'GET')
  t.equal(forbidden.statusCode, 403)
  t.same(forbidden.json(), {
    error: 'Forbidden',
    message: 'The sessions service refused the request and closed the connection before its answer was complete',
    code: 'UPSTREAM_REFUSED',
    requestId: forbidden.headers['x-request-id']
  })
  t.equal(upstream.hits(), 4, 'each request was sent once, none retried')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.notMatch(metrics, /gateway_upstream_failures_total\{service="sessions"/)
  t.match(metrics, /gateway_circuit_breaker_state\{service="sessions",instance="[^"]+"\} 0\n/)
})
