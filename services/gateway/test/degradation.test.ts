import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { DegradationReasons } from '@platform/contracts'
import { bearer, startRedisServer, testToken, uniqueName, waitFor } from '@platform/kit/testing'
import { ServiceNames, unavailableMode } from '../src/domain/route-table.js'
import { build, deadUrl } from './helper.js'
import { portOf, startUpstream } from './upstream.js'

const user = bearer(testToken('u1', ['user']))
const REDIS = 'Redis unavailable: limits counted per instance'
const CACHE = 'Cache unavailable: answered from the database'

/** A gateway whose Redis is stopped (so it limits locally and says so), in front of a sessions upstream. */
async function withRedisDown(t: Parameters<typeof build>[0], env: Record<string, string> = {}, listen = false) {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const sessions = await startUpstream(t, 'sessions')
  const built = await build(t, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `${uniqueName('deg')}:`, SESSIONS_URLS: sessions.url, ...env }, { listen })
  await redis.stop()
  await waitFor(async () => (await built.app.inject({ method: 'GET', url: '/health' })).json().redis === 'down')
  return built
}

test('one table: every mode has one short sentence, and every service behind the gateway has its mode', async (t) => {
  // The table's own rules (ASCII, no ";") and the helpers are tested in packages/contracts.
  for (const service of ServiceNames) t.ok(DegradationReasons[unavailableMode(service)], `${service} has a reason`)
  t.equal(DegradationReasons.rate_limit_local, REDIS)
  t.equal(DegradationReasons.sessions_unavailable, 'sessions service unavailable: circuit open')
  t.equal(DegradationReasons.cache_unavailable, CACHE)
})

test("a relayed reply joins the upstream's modes and reasons after the gateway's own, for small and streamed bodies", async (t) => {
  const { app } = await withRedisDown(t)
  const set = encodeURIComponent(JSON.stringify({ 'x-degradation-mode': 'cache_unavailable', 'x-degradation-reason': CACHE }))
  for (const size of [10, 200_000]) {
    const res = await app.inject({ method: 'GET', url: `/api/v1/sessions/active?set=${set}&size=${size}`, headers: user })
    t.equal(res.statusCode, 200, `${size} bytes`)
    t.equal(res.headers['x-degradation-mode'], 'rate_limit_local, cache_unavailable')
    t.equal(res.headers['x-degradation-reason'], `${REDIS}; ${CACHE}`)
  }
})

test('an upstream mode sent without a reason gets the reason from the table', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { app } = await build(t, { SESSIONS_URLS: sessions.url })
  const res = await app.inject({ method: 'GET', url: '/api/v1/sessions/active?degrade=cache_unavailable', headers: user })
  t.equal(res.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(res.headers['x-degradation-reason'], CACHE)
})

test('CIRCUIT_OPEN with Redis down: both modes, both reasons, in the order they happened', async (t) => {
  const { app } = await withRedisDown(t, { SESSIONS_URLS: await deadUrl(), MAX_RETRIES: '0', CIRCUIT_BREAKER_FAILURE_THRESHOLD: '1' })
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })).statusCode, 502)
  const open = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })
  t.equal(open.statusCode, 503)
  t.equal(open.json().code, 'CIRCUIT_OPEN')
  t.equal(open.headers['x-degradation-mode'], 'rate_limit_local, sessions_unavailable')
  t.equal(open.headers['x-degradation-reason'], `${REDIS}; sessions service unavailable: circuit open`)
})

/** A chat stand-in whose handshake answer says it is degraded itself. */
async function startChat(t: Parameters<typeof build>[0]) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  wss.on('headers', (headers) => headers.push('x-degradation-mode: cache_unavailable'))
  wss.on('connection', (ws) => ws.send('hello'))
  await once(wss, 'listening')
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of wss.clients) s.terminate()
        wss.close(() => r())
      })
  )
  return `http://127.0.0.1:${portOf(wss)}`
}

/** The HTTP answer to an upgrade: the 101's headers, or a refusal's status, headers and body. */
function upgrade(url: string) {
  return new Promise<{ status: number; headers: IncomingMessage['headers']; body?: Record<string, unknown> }>((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('upgrade', (res) => {
      ws.close()
      resolve({ status: 101, headers: res.headers })
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }))
    })
    ws.once('error', (err) => (err.message.startsWith('Unexpected server response') ? undefined : reject(err)))
  })
}

test('WebSocket upgrades carry both headers: on the 101 (joined with the upstream handshake) and on a 503 refusal', async (t) => {
  const chat = await startChat(t)
  const { url } = await withRedisDown(t, { CHAT_URLS: chat }, true)
  const ws = `${url.replace(/^http/, 'ws')}/ws/chat`
  const open = await upgrade(ws)
  t.equal(open.status, 101)
  t.equal(open.headers['x-degradation-mode'], 'rate_limit_local, cache_unavailable')
  t.equal(open.headers['x-degradation-reason'], `${REDIS}; ${CACHE}`)

  const down = await withRedisDown(t, { CHAT_URLS: await deadUrl(), CIRCUIT_BREAKER_FAILURE_THRESHOLD: '1' }, true)
  const downWs = `${down.url.replace(/^http/, 'ws')}/ws/chat`
  t.equal((await upgrade(downWs)).status, 502)
  const refused = await upgrade(downWs)
  t.equal(refused.status, 503)
  t.equal(refused.body?.code, 'CIRCUIT_OPEN')
  t.equal(refused.headers['x-degradation-mode'], 'rate_limit_local, chat_unavailable')
  t.equal(refused.headers['x-degradation-reason'], `${REDIS}; chat service unavailable: circuit open`)
})
