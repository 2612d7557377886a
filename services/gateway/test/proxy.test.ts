import { connect } from 'node:net'
import { test } from 'tap'
import { badTokens, bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'
import { startUpstream } from './upstream.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const user = bearer(testToken('u1', ['user']))
const admin = bearer(testToken('a1', ['admin']))

async function stack(t: Parameters<typeof build>[0]) {
  const sessions = await startUpstream(t, 'sessions')
  const tasks = await startUpstream(t, 'task-sessions')
  const chat = await startUpstream(t, 'chat')
  const cleanup = await startUpstream(t, 'cleanup-worker')
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    TASK_SESSIONS_URLS: tasks.url,
    CHAT_URLS: chat.url,
    CLEANUP_WORKER_URLS: cleanup.url
  })
  return { app, sessions, tasks, chat, cleanup }
}

test('each public prefix reaches its own service', async (t) => {
  const { app, sessions, tasks, chat, cleanup } = await stack(t)
  const cases: Array<[string, string, Record<string, string>]> = [
    ['/api/v1/sessions', 'sessions', user],
    ['/api/v1/sessions/active?userId=u1', 'sessions', user],
    ['/api/v1/login-sessions/current', 'sessions', user],
    ['/api/v1/task-sessions/task/t1', 'task-sessions', user],
    ['/api/v1/chat/sessions?limit=5', 'chat', user],
    ['/api/v1/admin/cleanup/runs', 'cleanup-worker', admin]
  ]
  for (const [url, instance, headers] of cases) {
    const res = await app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    t.equal(res.json().instance, instance, url)
    t.equal(res.json().url, url, `${url}: path and query pass unchanged`)
  }
  t.equal(sessions.hits.length, 3)
  t.equal(tasks.hits.length, 1)
  t.equal(chat.hits.length, 1)
  t.equal(cleanup.hits.length, 1)
})

test('the admin prefix needs the admin role', async (t) => {
  const { app, cleanup } = await stack(t)
  const res = await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: user })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'FORBIDDEN')
  t.equal(cleanup.hits.length, 0)
})

test('a bad or missing token is refused before any upstream sees it', async (t) => {
  const { app, sessions } = await stack(t)
  const cases: Array<[Record<string, string>, string]> = [
    [{}, 'TOKEN_MISSING'],
    [bearer(badTokens.expired()), 'TOKEN_EXPIRED'],
    [bearer(badTokens.wrongSecret()), 'TOKEN_INVALID'],
    [bearer(badTokens.algNone()), 'TOKEN_INVALID'],
    [bearer(badTokens.missingSub()), 'TOKEN_INVALID'],
    [bearer(badTokens.malformed()), 'TOKEN_INVALID'],
    [{ authorization: 'Basic dTE6cHc=' }, 'TOKEN_INVALID']
  ]
  for (const [headers, code] of cases) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers })
    t.equal(res.statusCode, 401, code)
    t.equal(res.json().code, code)
    t.equal(res.json().requestId, res.headers['x-request-id'])
  }
  t.equal(sessions.hits.length, 0)
})

test('x-request-id is generated, echoed and forwarded', async (t) => {
  const { app, sessions } = await stack(t)
  const generated = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })
  t.match(generated.headers['x-request-id'], UUID)
  t.equal(sessions.hits[0]?.headers['x-request-id'], generated.headers['x-request-id'])

  const given = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { ...user, 'x-request-id': 'client-id-42' } })
  t.equal(given.headers['x-request-id'], 'client-id-42')
  t.equal(sessions.hits[1]?.headers['x-request-id'], 'client-id-42')

  const insane = await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: { ...user, 'x-request-id': 'a b<script>' } })
  t.match(insane.headers['x-request-id'], UUID)

  const error = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'err-1' } })
  t.equal(error.statusCode, 404)
  t.equal(error.headers['x-request-id'], 'err-1')
  t.same(error.json(), { error: 'Not Found', message: 'No route GET /nowhere', code: 'NOT_FOUND', requestId: 'err-1' })
})

test('hop-by-hop and client identity headers never reach the upstream', async (t) => {
  const { app, sessions } = await stack(t)
  const res = await app.inject({
    method: 'GET',
    url: '/api/v1/sessions',
    headers: {
      ...user,
      connection: 'keep-alive, x-hop',
      'x-hop': 'listed in Connection',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic eDp5',
      te: 'trailers',
      'x-user-id': 'admin',
      'x-user-roles': 'admin',
      'x-auth-request-user': 'admin',
      'x-forwarded-for': '6.6.6.6',
      'x-real-ip': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      'x-custom': 'kept',
      'idempotency-key': 'k1'
    }
  })
  t.equal(res.statusCode, 200)
  const seen = sessions.hits[0]!.headers
  for (const name of ['x-hop', 'keep-alive', 'proxy-authorization', 'te', 'x-user-id', 'x-user-roles', 'x-auth-request-user', 'forwarded']) {
    t.equal(seen[name], undefined, `${name} stripped`)
  }
  t.equal(seen['x-forwarded-for'], '127.0.0.1', 'the gateway says who the client is')
  t.equal(seen['x-real-ip'], '127.0.0.1')
  t.equal(seen['x-custom'], 'kept')
  t.equal(seen['idempotency-key'], 'k1')
  t.equal(seen.authorization, user.authorization, 'the token is forwarded')
  t.equal(seen.host, new URL(sessions.url).host, 'host is the upstream')
})

test('a body sent with Expect: 100-continue (curl does so past 1 MiB) is forwarded without it', async (t) => {
  const { app, sessions } = await stack(t)
  const payload = 'x'.repeat(4096)
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/sessions/upload',
    headers: { ...user, 'content-type': 'application/octet-stream', expect: '100-continue' },
    payload
  })
  t.equal(res.statusCode, 200, 'not a 502: undici refuses to send Expect')
  t.equal(res.json().bytes, payload.length)
  t.equal(sessions.hits[0]?.headers.expect, undefined, 'the gateway answered it; the upstream never sees it')
})

test('the upstream reply is relayed with its status, headers and body', async (t) => {
  const { app } = await stack(t)
  const notFound = await app.inject({ method: 'GET', url: '/api/v1/sessions/x/status/404', headers: user })
  t.equal(notFound.statusCode, 404)
  t.same(notFound.json(), { instance: 'sessions', code: 'STATUS_404' })
  const ok = await app.inject({ method: 'GET', url: '/api/v1/sessions/active?degrade=cache_unavailable', headers: user })
  t.equal(ok.headers['x-upstream-instance'], 'sessions')
  t.equal(ok.headers['x-degradation-mode'], 'cache_unavailable')
  t.equal(ok.headers['content-type'], 'application/json; charset=utf-8')

  const body = JSON.stringify({ title: 'Quarterly plan' })
  const post = await app.inject({ method: 'POST', url: '/api/v1/sessions', headers: { ...user, 'content-type': 'application/json' }, payload: body })
  t.equal(post.statusCode, 200)
  t.equal(post.json().method, 'POST')
  t.equal(post.json().bytes, Buffer.byteLength(body))
  t.equal(post.json().headers['content-type'], 'application/json')

  const head = await app.inject({ method: 'HEAD', url: '/api/v1/sessions', headers: user })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
})

test("upstream headers are relayed beside the gateway's own, which win, for small and streamed bodies alike", async (t) => {
  const { app } = await stack(t)
  const set = encodeURIComponent(
    JSON.stringify({
      'ratelimit-limit': '7',
      'set-cookie': ['a=1', 'b=2'],
      'x-request-id': 'upstream-id',
      'x-custom': 'kept',
      'keep-alive': 'timeout=1'
    })
  )
  for (const size of [10, 200_000]) {
    const res = await app.inject({
      method: 'GET',
      url: `/api/v1/sessions/x?set=${set}&size=${size}`,
      headers: { ...user, 'x-request-id': 'client-id' }
    })
    t.equal(res.statusCode, 200, `${size} bytes`)
    t.equal(res.rawPayload.length, size, `${size} bytes arrive whole`)
    t.equal(res.headers['content-type'], 'text/plain', `${size}: the upstream's content type`)
    t.equal(res.headers['x-custom'], 'kept', `${size}: the upstream's own header`)
    t.same(res.headers['set-cookie'], ['a=1', 'b=2'], `${size}: every cookie`)
    t.equal(res.headers['ratelimit-limit'], '1000', `${size}: the gateway's limit, not the upstream's`)
    t.equal(res.headers['x-request-id'], 'client-id', `${size}: the request id the gateway forwarded`)
    t.equal(res.headers['keep-alive'], undefined, `${size}: no hop-by-hop header`)
  }
})

test('/internal/* and paths outside the table are never reachable', async (t) => {
  const { app, sessions } = await stack(t)
  for (const url of [
    '/internal/secret',
    '/api/v1/sessions/../../internal/secret',
    '/api/v1/sessions/%2e%2e/%2E%2E/internal/secret',
    '/api/v1/sessions/..%2f..%2finternal%2fsecret',
    '/api/v1/sessionsfoo',
    '/api/v2/sessions'
  ]) {
    const res = await app.inject({ method: 'GET', url, headers: user })
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().code, 'NOT_FOUND', url)
  }
  t.equal(sessions.hits.length, 0)
})

test('several instances of a service take turns', async (t) => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { app } = await build(t, { SESSIONS_URLS: `${a.url},${b.url}` })
  const seen: string[] = []
  for (let i = 0; i < 4; i++) seen.push((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: user })).json().instance)
  t.same(seen, ['a', 'b', 'a', 'b'])
})

test('GET / lists what the gateway serves', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().docs, '/docs')
  t.same(res.json().websockets, [{ path: '/ws/chat', service: 'chat' }])
  t.same(res.json().api[4], { prefix: '/api/v1/admin/cleanup', service: 'cleanup-worker', access: 'admin' })
})

test('dot segments sent raw on the wire are refused, not normalized', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const { url } = await build(t, { SESSIONS_URLS: sessions.url }, { listen: true })
  const { port } = new URL(url)
  const raw = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nauthorization: ${user.authorization}\r\nconnection: close\r\n\r\n`)
      })
      let text = ''
      socket.on('data', (c) => (text += c.toString()))
      socket.on('end', () => resolve(text.slice(0, text.indexOf('\r\n'))))
      socket.on('error', reject)
    })
  t.equal(await raw('/api/v1/sessions/../../internal/secret'), 'HTTP/1.1 404 Not Found')
  t.equal(await raw('/api/v1/sessions/./active'), 'HTTP/1.1 404 Not Found')
  t.equal(await raw('/api/v1/sessions/%2E%2E/%2e%2e/internal/secret'), 'HTTP/1.1 404 Not Found')
  t.equal(await raw('/api/v1/sessions/a..b'), 'HTTP/1.1 200 OK', 'dots inside a segment are fine')
  t.equal(sessions.hits.length, 1)
})
