import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { badTokens, testToken, waitFor } from '@platform/kit/testing'
import { build } from './helper.js'
import { portOf } from './upstream.js'

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** A stand-in for the chat service: greets with what it saw, echoes, and records how sockets closed. */
async function startEcho(t: Parameters<typeof build>[0]) {
  const seen: Array<{ url: string; protocols: string[]; headers: IncomingMessage['headers'] }> = []
  const closes: Array<{ code: number; reason: string }> = []
  const sockets: WebSocket[] = []
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (protocols) => [...protocols].find((p) => !JWT_SHAPE.test(p)) ?? false
  })
  wss.on('connection', (ws, req) => {
    const protocols = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    seen.push({ url: req.url ?? '', protocols, headers: req.headers })
    sockets.push(ws)
    ws.send(JSON.stringify({ hello: true, url: req.url, protocol: ws.protocol }))
    ws.on('message', (data, binary) => ws.send(data, { binary }))
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }))
  })
  await once(wss, 'listening')
  const port = portOf(wss)
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of wss.clients) s.terminate()
        wss.close(() => r())
      })
  )
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    closes,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of wss.clients) s.terminate()
        wss.close(() => r())
      })
  }
}

/** Opens a client; resolves with the socket and its first message, or with how it failed. */
function connect(url: string, protocols?: string[]) {
  return new Promise<
    | { kind: 'open'; ws: WebSocket; first: Record<string, unknown> }
    | { kind: 'closed'; code: number; reason: string; protocol: string }
    | { kind: 'refused'; status: number; body: Record<string, unknown>; headers: IncomingMessage['headers'] }
  >((resolve, reject) => {
    const ws = new WebSocket(url, protocols)
    ws.once('message', (data) =>
      resolve({
        kind: 'open',
        ws,
        first: JSON.parse((Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString())
      })
    )
    ws.once('close', (code, reason) => resolve({ kind: 'closed', code, reason: reason.toString(), protocol: ws.protocol }))
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body: JSON.parse(text), headers: res.headers }))
    })
    ws.once('error', (err) => (err.message.startsWith('Unexpected server response') ? undefined : reject(err)))
  })
}

async function setup(t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const echo = await startEcho(t)
  const { url, app } = await build(t, { CHAT_URLS: echo.url, ...env }, { listen: true })
  return { echo, app, ws: `${url.replace(/^http/, 'ws')}/ws/chat` }
}

test('a token in ?token= opens a proxied socket that relays both ways', async (t) => {
  const { echo, ws } = await setup(t)
  const token = testToken('u1')
  const res = await connect(`${ws}?token=${token}&lastMessageId=7`)
  if (res.kind !== 'open') return t.fail(`not open: ${JSON.stringify(res)}`)
  t.same(res.first, { hello: true, url: `/ws/chat?token=${token}&lastMessageId=7`, protocol: '' })
  t.match(echo.seen[0]?.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the upgrade carries a request id')
  t.equal(echo.seen[0]?.headers['x-forwarded-for'], '127.0.0.1')
  res.ws.send('ping')
  const [echoed] = await once(res.ws, 'message')
  t.equal(echoed.toString(), 'ping')
  const big = Buffer.alloc(200_000, 7)
  res.ws.send(big)
  const [back] = await once(res.ws, 'message')
  t.ok(Buffer.isBuffer(back) && back.equals(big), 'a 200 kB binary frame passes unchanged')
  res.ws.close(1000)
  await once(res.ws, 'close')
})

test('a token in Sec-WebSocket-Protocol works and every subprotocol is forwarded', async (t) => {
  const { echo, ws } = await setup(t)
  const token = testToken('u1')
  const res = await connect(ws, ['chat.v1', token])
  if (res.kind !== 'open') return t.fail(`not open: ${JSON.stringify(res)}`)
  t.equal(res.ws.protocol, 'chat.v1', "the upstream's choice reaches the client")
  t.same(echo.seen[0]?.protocols, ['chat.v1', token])
  res.ws.close()
})

test('a bad token closes the socket with 4401 and never reaches the upstream', async (t) => {
  const { echo, ws } = await setup(t)
  const expired = await connect(`${ws}?token=${badTokens.expired()}`)
  t.same(expired, { kind: 'closed', code: 4401, reason: 'TOKEN_EXPIRED', protocol: '' })
  const invalid = await connect(ws, ['chat.v1', badTokens.wrongSecret()])
  t.same(invalid, { kind: 'closed', code: 4401, reason: 'TOKEN_INVALID', protocol: 'chat.v1' })
  const none = await connect(`${ws}?token=${badTokens.algNone()}`)
  t.same(none, { kind: 'closed', code: 4401, reason: 'TOKEN_INVALID', protocol: '' })
  t.equal(echo.seen.length, 0)
})

test('without a token the upstream decides (chat may allow anonymous users)', async (t) => {
  const { echo, ws } = await setup(t)
  const res = await connect(ws, ['chat.v1'])
  t.equal(res.kind, 'open')
  t.equal(echo.seen[0]?.headers.authorization, undefined)
  if (res.kind === 'open') res.ws.close()
})

test('closing either side closes the other, with its code', async (t) => {
  const { echo, ws } = await setup(t)
  const first = await connect(`${ws}?token=${testToken('u1')}`)
  if (first.kind !== 'open') return t.fail('not open')
  first.ws.close(4000, 'bye')
  const [code] = await once(first.ws, 'close')
  t.equal(code, 4000)
  await waitFor(() => echo.closes.length === 1)
  t.same(echo.closes[0], { code: 4000, reason: 'bye' }, 'the upstream got the client close')

  const second = await connect(`${ws}?token=${testToken('u1')}`)
  if (second.kind !== 'open') return t.fail('not open')
  echo.sockets[1]?.close(4008, 'slow consumer')
  const [code2, reason2] = await once(second.ws, 'close')
  t.equal(code2, 4008, 'the client got the upstream close')
  t.equal(reason2.toString(), 'slow consumer')

  const third = await connect(`${ws}?token=${testToken('u1')}`)
  if (third.kind !== 'open') return t.fail('not open')
  echo.sockets[2]?.terminate()
  const [code3] = await once(third.ws, 'close')
  t.equal(code3, 1006, 'an upstream that vanishes drops the client connection')
})

test('an unreachable upstream, an unknown path and the rate limit are HTTP answers to the upgrade', async (t) => {
  const { echo, ws } = await setup(t, { RATE_LIMIT_ANONYMOUS: '2' })
  const unknown = await connect(ws.replace('/ws/chat', '/ws/other'))
  t.equal(unknown.kind === 'refused' && unknown.status, 404)
  await echo.close()
  const down = await connect(ws)
  if (down.kind !== 'refused') return t.fail('not refused')
  t.equal(down.status, 502)
  t.equal(down.body.code, 'UPSTREAM_ERROR')
  t.equal(down.body.requestId, down.headers['x-request-id'])
  t.equal((await connect(ws)).kind, 'refused', 'the second of two allowed upgrades')
  const limited = await connect(ws)
  if (limited.kind !== 'refused') return t.fail('not refused')
  t.equal(limited.status, 429)
  t.equal(limited.body.code, 'RATE_LIMITED')
  t.equal(limited.headers['retry-after'], '3600')
})
