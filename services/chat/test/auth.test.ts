import t from 'tap'
import { badTokens, bearer, testClock, testToken, waitFor } from '@platform/kit/testing'
import { signToken } from '@platform/kit'
import { TEST_JWT_SECRET } from '@platform/kit/testing'
import { build, clients, Client } from './helper.js'

t.test('a token in ?token= or in Sec-WebSocket-Protocol authenticates; the protocol is answered', async (t) => {
  const { wsUrl } = await build(t)
  const open = clients(t)
  const byQuery = await open(wsUrl, testToken('u1', ['user', 'provider']))
  t.equal(byQuery.ws.protocol, '')

  const token = testToken('u2')
  const byProtocol = await Client.open(wsUrl, { protocols: ['chat', token] })
  t.teardown(() => byProtocol.ws.terminate())
  t.equal(byProtocol.ws.protocol, 'chat', 'the server picks the non-token protocol')
  t.strictSame((await byProtocol.next('welcome')).user, { id: 'u2', type: 'client' })

  const tokenOnly = await Client.open(wsUrl, { protocols: [token] })
  t.teardown(() => tokenOnly.ws.terminate())
  t.equal(tokenOnly.ws.protocol, token, 'a lone token is echoed so browsers accept the upgrade')
  t.strictSame((await tokenOnly.next('welcome')).user, { id: 'u2', type: 'client' })
})

t.test('every bad token closes the socket with 4401 and its code, anonymous allowed or not', async (t) => {
  const { wsUrl } = await build(t)
  const cases: Array<[keyof typeof badTokens, string]> = [
    ['expired', 'TOKEN_EXPIRED'],
    ['wrongSecret', 'TOKEN_INVALID'],
    ['algNone', 'TOKEN_INVALID'],
    ['missingSub', 'TOKEN_INVALID'],
    ['malformed', 'TOKEN_INVALID']
  ]
  for (const [name, code] of cases) {
    const token = badTokens[name]()
    const c = await Client.open(wsUrl, { token })
    t.strictSame(await c.closed, { code: 4401, reason: code }, name)
    t.strictSame(c.frames, [], `${name}: no welcome`)
  }
  const viaProtocol = await Client.open(wsUrl, { protocols: ['chat', badTokens.wrongSecret()] })
  t.strictSame(await viaProtocol.closed, { code: 4401, reason: 'TOKEN_INVALID' }, 'also through Sec-WebSocket-Protocol')
})

t.test('without a token: anonymous when allowed, 4401 TOKEN_MISSING when not', async (t) => {
  const { wsUrl } = await build(t, { CHAT_ALLOW_ANONYMOUS: 'false' })
  const c = await Client.open(wsUrl)
  t.strictSame(await c.closed, { code: 4401, reason: 'TOKEN_MISSING' })
  const ok = await Client.connect(wsUrl, 'u1')
  t.teardown(() => ok.ws.terminate())
  t.equal(ok.ws.readyState, ok.ws.OPEN)
})

t.test('a connection is closed with 4401 once its token expires', async (t) => {
  // The heartbeat checks expiry: the test beats by hand on the service's clock, which it moves past exp.
  const clock = testClock()
  const { wsUrl, app } = await build(t, { HEARTBEAT_INTERVAL_MS: '3600000', JWT_CLOCK_TOLERANCE_SECONDS: '0' }, undefined, { now: () => clock.now() })
  const token = signToken({ sub: 'u1', roles: ['user'], ttlSeconds: 60 }, { secret: TEST_JWT_SECRET })
  const c = await Client.connect(wsUrl, token)
  const conn = [...app.chatHub.connections][0]!
  app.chatHub.beat()
  await waitFor(() => conn.alive, 20_000) // pinged and answered: still a live connection
  t.equal(c.ws.readyState, c.ws.OPEN, 'open while the token is valid')
  clock.advance(61_000)
  app.chatHub.beat()
  t.strictSame(await c.closed, { code: 4401, reason: 'TOKEN_EXPIRED' })
})

t.test("other users' sessions: SESSION_NOT_FOUND over WebSocket, 404 over REST", async (t) => {
  const { app, wsUrl } = await build(t, { ASSISTANT_ENABLED: 'false' })
  const open = clients(t)
  const owner = await open(wsUrl, 'owner')
  const { chatSessionId } = await owner.init()
  await owner.request({ type: 'message', content: 'private' })

  const intruder = await open(wsUrl, 'intruder')
  const denied = await intruder.request({ type: 'session_init', chatSessionId, lastMessageId: '1' })
  t.equal(denied.code, 'SESSION_NOT_FOUND')
  t.strictSame(intruder.drain('message'), [], 'nothing of the session reaches the intruder')
  await owner.request({ type: 'message', content: 'still private' })
  await intruder.request({ type: 'typing', isTyping: true }).then((f) => t.equal(f.code, 'NO_SESSION'))
  t.strictSame(intruder.drain('message'), [])

  const anonymous = await open(wsUrl, null)
  t.equal((await anonymous.init(chatSessionId)).code, 'SESSION_NOT_FOUND', 'anonymous cannot join an owned session')

  const intruderAuth = bearer(testToken('intruder'))
  for (const [method, url, payload] of [
    ['GET', `/api/v1/chat/sessions/${chatSessionId}/messages`, undefined],
    ['PATCH', `/api/v1/chat/sessions/${chatSessionId}/context`, { a: 1 }],
    ['POST', `/api/v1/chat/sessions/${chatSessionId}/close`, undefined],
    ['PUT', `/api/v1/chat/sessions/${chatSessionId}/rating`, { rating: 5 }]
  ] as const) {
    const res = await app.inject({ method, url, headers: intruderAuth, ...(payload ? { payload } : {}) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.equal(res.json().code, 'SESSION_NOT_FOUND')
  }
  const list = await app.inject({ method: 'GET', url: '/api/v1/chat/sessions', headers: intruderAuth })
  t.strictSame(list.json(), { items: [], nextCursor: null })
  const asOther = await app.inject({ method: 'GET', url: '/api/v1/chat/sessions?userId=owner', headers: intruderAuth })
  t.equal(asOther.statusCode, 403)
  t.equal(asOther.json().code, 'FORBIDDEN')

  const noToken = await app.inject({ method: 'GET', url: '/api/v1/chat/sessions' })
  t.equal(noToken.statusCode, 401)
  t.equal(noToken.json().code, 'TOKEN_MISSING')
  const expired = await app.inject({ method: 'GET', url: '/api/v1/chat/sessions', headers: bearer(badTokens.expired()) })
  t.equal(expired.json().code, 'TOKEN_EXPIRED')

  const admin = bearer(testToken('boss', ['user', 'admin']))
  const seen = await app.inject({ method: 'GET', url: `/api/v1/chat/sessions/${chatSessionId}/messages`, headers: admin })
  t.equal(seen.statusCode, 200, 'an admin sees every session')
  t.strictSame(
    seen.json().items.map((m: { content: string }) => m.content),
    ['private', 'still private']
  )
})
