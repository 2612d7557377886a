import { maxHeaderSize } from 'node:http'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { errorHandlerPlugin, fastifyOptions } from '../src/index.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** An app built with the kit's options and error handler, serving on a port. */
async function build(t: { teardown(fn: () => unknown): void }, routes: (app: FastifyInstance) => void = () => {}) {
  const app = Fastify(fastifyOptions({ LOG_LEVEL: 'silent', SERVICE_NAME: 'demo', BODY_LIMIT_BYTES: 1024 }))
  await app.register(errorHandlerPlugin)
  app.get('/items/:id', async (request) => request.params)
  app.post('/items', { schema: { body: Type.Object({ title: Type.String() }) } }, async (request) => request.body)
  routes(app)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url }
}

interface Raw {
  status: number
  headers: Record<string, string>
  body: Record<string, unknown>
}

function parse(text: string): Raw {
  const [head = '', body = ''] = text.split('\r\n\r\n')
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  try {
    return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) as Record<string, unknown> }
  } catch (err) {
    throw new Error(`not a JSON answer: ${text.slice(0, 300)}`, { cause: err })
  }
}

/** Writes raw bytes and reads until the server closes: what Node's parser refuses never reaches a route. */
function raw(url: string, request: string): Promise<Raw> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let text = ''
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => {
      try {
        resolve(parse(text))
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)))
      }
    })
    socket.end(request)
  })
}

t.test('a malformed percent-encoding in the path: 400 BAD_URL in the error shape, with the request id', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/%zz' })
  t.equal(res.statusCode, 400)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.match(res.headers['x-request-id'], UUID)
  t.same(res.json(), {
    error: 'Bad Request',
    message: 'The path is not a valid URL: it has a malformed percent-encoding',
    code: 'BAD_URL',
    requestId: res.headers['x-request-id']
  })
  const kept = await app.inject({ method: 'GET', url: '/items/%E0%A4%A', headers: { 'x-request-id': 'client-7' } })
  t.equal(kept.statusCode, 400)
  t.same([kept.json().code, kept.json().requestId, kept.headers['x-request-id']], ['BAD_URL', 'client-7', 'client-7'], "the client's sane id is kept")
})

t.test('a path parameter over maxParamLength: 414 URI_TOO_LONG', async (t) => {
  const { app } = await build(t)
  t.equal((await app.inject({ method: 'GET', url: `/items/${'a'.repeat(512)}` })).statusCode, 200, 'at the limit it passes')
  const res = await app.inject({ method: 'GET', url: `/items/${'a'.repeat(513)}` })
  t.equal(res.statusCode, 414)
  t.same(res.json(), {
    error: 'URI Too Long',
    message: 'A path segment is longer than this server accepts',
    code: 'URI_TOO_LONG',
    requestId: res.headers['x-request-id']
  })
})

t.test('a body that is not JSON: 415 UNSUPPORTED_MEDIA_TYPE', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/items', headers: { 'content-type': 'application/xml' }, payload: '<title/>' })
  t.equal(res.statusCode, 415)
  const { requestId, ...rest } = res.json()
  t.same(rest, { error: 'Unsupported Media Type', message: 'Send the body as application/json', code: 'UNSUPPORTED_MEDIA_TYPE' })
  t.match(requestId, UUID)
})

t.test("what Node's parser refuses is answered in the error shape: 431 for headers over 16 KiB, 400 for bad HTTP", async (t) => {
  const { url } = await build(t)
  const host = new URL(url).host
  const bigHeader = await raw(url, `GET /items/1 HTTP/1.1\r\nhost: ${host}\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.equal(bigHeader.status, 431)
  t.same(bigHeader.body, {
    error: 'Request Header Fields Too Large',
    message: `The request line and headers are larger than the ${maxHeaderSize} bytes this server reads`,
    code: 'HEADERS_TOO_LARGE',
    requestId: bigHeader.headers['x-request-id']
  })
  t.match(bigHeader.headers['x-request-id'], UUID)
  t.equal(bigHeader.headers.connection, 'close')
  t.equal(bigHeader.headers['content-type'], 'application/json; charset=utf-8')

  const bigUrl = await raw(url, `GET /items/${'a'.repeat(20_000)} HTTP/1.1\r\nhost: ${host}\r\n\r\n`)
  t.equal(bigUrl.status, 431, 'the request line counts toward the same limit')
  t.equal(bigUrl.body.code, 'HEADERS_TOO_LARGE')

  const garbage = await raw(url, 'NOT HTTP AT ALL\r\n\r\n')
  t.equal(garbage.status, 400)
  t.same(garbage.body, {
    error: 'Bad Request',
    message: 'The request is not valid HTTP',
    code: 'BAD_REQUEST',
    requestId: garbage.headers['x-request-id']
  })
})

t.test('a request that never completes: 408 REQUEST_TIMEOUT, as Node reports it', async (t) => {
  const { app, url } = await build(t)
  // Node reports a slow request on its own timer (every 30 s): the test hands its error over at once.
  const accepted = new Promise<Socket>((resolve) => app.server.once('connection', resolve))
  const { hostname, port } = new URL(url)
  const client = connect(Number(port), hostname)
  let text = ''
  client.on('data', (d: Buffer) => (text += d.toString('latin1')))
  client.on('error', () => {})
  const closed = new Promise((resolve) => client.once('close', resolve))
  client.write('GET /items/1 HTTP/1.1\r\nhost: x\r\n')
  const socket = await accepted
  app.server.emit('clientError', Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket)
  await closed
  const res = parse(text)
  t.equal(res.status, 408)
  t.same(res.body, {
    error: 'Request Timeout',
    message: 'The request did not arrive in time',
    code: 'REQUEST_TIMEOUT',
    requestId: res.headers['x-request-id']
  })
})

t.test('nothing is written over a response already under way: the connection is only closed', async (t) => {
  let release = () => {}
  const { app, url } = await build(t, (app) =>
    app.get('/slow', (_request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('partial')
      release = () => reply.raw.end()
    })
  )
  const accepted = new Promise<Socket>((resolve) => app.server.once('connection', resolve))
  const { hostname, port } = new URL(url)
  const client = connect(Number(port), hostname)
  let text = ''
  const started = new Promise<void>((resolve) =>
    client.on('data', (d: Buffer) => ((text += d.toString('latin1')), text.includes('partial') && resolve()))
  )
  client.on('error', () => {})
  const closed = new Promise((resolve) => client.once('close', resolve))
  client.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n')
  const socket = await accepted
  await started
  app.server.emit('clientError', Object.assign(new Error('Parse Error'), { code: 'HPE_INVALID_METHOD' }), socket)
  await closed
  release()
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  t.notMatch(text, /HTTP\/1\.1 400/)
})
