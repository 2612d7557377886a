import { maxHeaderSize } from 'node:http'
import { connect } from 'node:net'
import { test } from 'tap'
import WebSocket from 'ws'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'
import { startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))

/** Writes raw bytes to the gateway and reads until it closes: what Node's parser refuses never reaches a route. */
function raw(url: string, request: string): Promise<{ status: number; headers: Record<string, string>; body: Record<string, unknown> }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let text = ''
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n')
      const [statusLine = '', ...lines] = head.split('\r\n')
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
      try {
        resolve({ status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) })
      } catch (err) {
        reject(new Error(`not a JSON answer: ${text.slice(0, 300)} (${String(err)})`))
      }
    })
    socket.end(request)
  })
}

test('a path and query over MAX_URL_LENGTH: 414 URI_TOO_LONG in the error shape, before any upstream', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url, MAX_URL_LENGTH: '300' })
  const fits = `/api/v1/sessions/${'a'.repeat(300 - '/api/v1/sessions/'.length)}`
  t.equal((await app.inject({ method: 'GET', url: fits, headers: user })).statusCode, 200, 'exactly at the limit passes')
  for (const url of [`${fits}b`, `/nowhere/${'a'.repeat(400)}`, `/health?${'q'.repeat(400)}`]) {
    const res = await app.inject({ method: 'GET', url, headers: user })
    t.equal(res.statusCode, 414, url.slice(0, 20))
    t.same(res.json(), {
      error: 'URI Too Long',
      message: 'The path and query are longer than the 300 characters accepted',
      code: 'URI_TOO_LONG',
      requestId: res.headers['x-request-id']
    })
  }
  t.equal(sessions.hits.length, 1)
})

test("what Node's parser refuses is answered in the error shape: 431 for headers (or a URL) over 16 KiB, 400 for bad HTTP", async (t) => {
  const { url } = await build(t, {}, { listen: true })
  const host = new URL(url).host
  const bigHeader = await raw(url, `GET /api/v1/sessions HTTP/1.1\r\nhost: ${host}\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.equal(bigHeader.status, 431)
  t.same(bigHeader.body, {
    error: 'Request Header Fields Too Large',
    message: `The request line and headers are larger than the ${maxHeaderSize} bytes this server reads`,
    code: 'HEADERS_TOO_LARGE',
    requestId: bigHeader.headers['x-request-id']
  })
  t.equal(bigHeader.headers.connection, 'close')

  const bigUrl = await raw(url, `GET /api/v1/sessions/${'a'.repeat(20_000)} HTTP/1.1\r\nhost: ${host}\r\n\r\n`)
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

test('a malformed percent-encoding in the path: 400 BAD_URL in the error shape, before any upstream', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url })
  for (const url of ['/api/v1/sessions/%zz', '/%E0%A4%A']) {
    const res = await app.inject({ method: 'GET', url, headers: { ...user, 'x-request-id': 'bad-url-1' } })
    t.equal(res.statusCode, 400, url)
    t.equal(res.headers['x-request-id'], 'bad-url-1')
    t.same(res.json(), {
      error: 'Bad Request',
      message: 'The path is not a valid URL: it has a malformed percent-encoding',
      code: 'BAD_URL',
      requestId: 'bad-url-1'
    })
  }
  t.equal(sessions.hits.length, 0)
})

test('a WebSocket upgrade over MAX_URL_LENGTH is refused with 414', async (t) => {
  const { url } = await build(t, { MAX_URL_LENGTH: '300' }, { listen: true })
  const status = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws/chat?lastMessageId=${'1'.repeat(400)}`)
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.once('open', () => reject(new Error('opened')))
    ws.once('error', (err) => (err.message.startsWith('Unexpected server response') ? undefined : reject(err)))
  })
  t.equal(status, 414)
})
