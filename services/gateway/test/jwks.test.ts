import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import { test } from 'tap'
import { createSigner, type Algorithm } from 'fast-jwt'
import { bearer, testClock, testToken } from '@platform/kit/testing'
import { build } from './helper.js'
import { portOf, startUpstream } from './upstream.js'

interface Key {
  kid: string
  alg: Algorithm
  privateKey: KeyObject
  publicKey: KeyObject
  jwk: Record<string, unknown>
}

function rsaKey(kid: string): Key {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, alg: 'RS256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } }
}

function ecKey(kid: string): Key {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  // No `alg`: ES256 follows from the P-256 curve.
  return { kid, alg: 'ES256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid } }
}

function sign(key: Key, claims: Record<string, unknown> = {}, kid: string = key.kid): string {
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  return createSigner({ key: pem, algorithm: key.alg, kid, expiresIn: 60_000 })({ sub: 'idp-user', roles: ['user'], ...claims })
}

/** A JWKS endpoint whose key set the test rotates; it counts every fetch. */
async function startJwks(t: Parameters<typeof build>[0], keys: Array<Record<string, unknown>>) {
  // Anything the test likes, a broken key set included.
  const state: { keys: unknown; fetches: number } = { keys, fetches: 0 }
  const server = createServer((_req, res) => {
    state.fetches++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return Object.assign(state, { url: `http://127.0.0.1:${portOf(server)}/.well-known/jwks.json` })
}

const k1 = rsaKey('k1')
const k2 = rsaKey('k2')
const e1 = ecKey('e1')

/** The re-fetch interval is a minute on a stopped clock: only the test's `clock.advance` lets one pass. */
async function setup(t: Parameters<typeof build>[0], keys = [k1.jwk, e1.jwk]) {
  const sessions = await startUpstream(t, 'sessions')
  const jwks = await startJwks(t, keys)
  const clock = testClock().freeze()
  const { app } = await build(
    t,
    {
      SESSIONS_URLS: sessions.url,
      JWT_JWKS_URL: jwks.url,
      JWKS_REFETCH_INTERVAL_SECONDS: '60',
      JWKS_CACHE_TTL_SECONDS: '0',
      RATE_LIMIT_AUTHENTICATED: '1000',
      RATE_LIMIT_ANONYMOUS: '1000'
    },
    { now: clock.now }
  )
  const call = (token: string) => app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer(token) })
  return { app, jwks, sessions, call, clock }
}

test('RS256 and ES256 tokens verify with the JWKS; HS256 tokens still verify with the secret', async (t) => {
  const { jwks, sessions, call } = await setup(t)
  t.equal(jwks.fetches, 1, 'fetched once at start')
  t.equal((await call(sign(k1))).statusCode, 200)
  t.equal((await call(sign(e1))).statusCode, 200)
  t.equal((await call(testToken('u1'))).statusCode, 200)
  t.match(sessions.hits[0]?.headers.authorization, /^Bearer ey/, 'the token is forwarded as it came')
  t.equal(jwks.fetches, 1, 'known kids never fetch')
})

test('a rotated key passes after one re-fetch; a removed key is refused', async (t) => {
  const { jwks, call, clock } = await setup(t)
  jwks.keys = [k2.jwk, e1.jwk]
  t.equal((await call(sign(k2))).statusCode, 401, 'inside the interval since the start-up fetch: not fetched yet')
  t.equal(jwks.fetches, 1)
  clock.advance(60_000)
  const rotated = await call(sign(k2))
  t.equal(rotated.statusCode, 200, 'the new kid passes')
  t.equal(jwks.fetches, 2, 'after exactly one re-fetch')
  const removed = await call(sign(k1))
  t.equal(removed.statusCode, 401)
  t.same(removed.json().message, 'The token is not valid: the signing key is unknown')
  t.equal(jwks.fetches, 2, 'no second re-fetch inside the interval')
})

test('a flood of unknown kids causes at most one re-fetch per interval', async (t) => {
  const { jwks, call, clock } = await setup(t)
  clock.advance(60_000)
  const flood = () => Promise.all(Array.from({ length: 50 }, () => call(sign(k2, {}, randomUUID()))))
  const first = await flood()
  t.ok(first.every((r) => r.statusCode === 401 && r.json().code === 'TOKEN_INVALID'))
  t.equal(jwks.fetches, 2, '50 unknown kids, one fetch')
  await flood()
  t.equal(jwks.fetches, 2, '50 more inside the interval, no fetch')
  clock.advance(59_999)
  await flood()
  t.equal(jwks.fetches, 2, 'still none 1 ms before the interval ends')
  clock.advance(1)
  await flood()
  t.equal(jwks.fetches, 3, 'one more after the interval')
})

test('algorithm confusion and forged signatures are refused', async (t) => {
  const { call } = await setup(t, [
    k1.jwk,
    e1.jwk,
    { kty: 'oct', kid: 'sym', k: Buffer.from('shared-secret-0123456789abcdef').toString('base64url') }
  ])
  const publicPem = k1.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const cases: Array<[string, string, string]> = [
    [
      'HS256 signed with the RSA public key',
      createSigner({ key: publicPem, algorithm: 'HS256', kid: 'k1', expiresIn: 60_000 })({ sub: 'x' }),
      'the signature does not verify'
    ],
    [
      'HS256 with the JWKS symmetric key',
      createSigner({ key: 'shared-secret-0123456789abcdef', algorithm: 'HS256', kid: 'sym', expiresIn: 60_000 })({ sub: 'x' }),
      'the signature does not verify'
    ],
    ['RS256 naming the EC key', sign(k2, {}, 'e1'), 'the signing algorithm is not accepted'],
    ['RS256 signed by another key under k1', sign(k2, {}, 'k1'), 'the signature does not verify'],
    ['alg none', createSigner({ algorithm: 'none' })({ sub: 'x' }), 'the signing algorithm is not accepted'],
    [
      'expired',
      createSigner({
        key: k1.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        algorithm: 'RS256',
        kid: 'k1',
        expiresIn: 60_000,
        clockTimestamp: Date.now() - 3_600_000
      })({ sub: 'x' }),
      ''
    ]
  ]
  for (const [name, token, reason] of cases) {
    const res = await call(token)
    t.equal(res.statusCode, 401, name)
    if (reason) t.equal(res.json().message, `The token is not valid: ${reason}`, name)
    else t.equal(res.json().code, 'TOKEN_EXPIRED', name)
  }
})

test('an identity provider that is down at start does not stop the gateway', async (t) => {
  const jwks = await startJwks(t, [k1.jwk])
  const keys = jwks.keys
  jwks.keys = 'not a key set'
  const sessions = await startUpstream(t, 'sessions')
  const clock = testClock().freeze()
  const env = { SESSIONS_URLS: sessions.url, JWT_JWKS_URL: jwks.url, JWKS_REFETCH_INTERVAL_SECONDS: '60', JWKS_CACHE_TTL_SECONDS: '0' }
  const { app } = await build(t, env, { now: clock.now })
  const call = () => app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer(sign(k1)) })
  t.equal((await call()).statusCode, 401, 'no keys yet')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer(testToken('u1')) })).statusCode, 200, 'HS256 unaffected')
  jwks.keys = keys
  t.equal((await call()).statusCode, 401, 'the provider is back, but the interval has not passed')
  clock.advance(60_000)
  t.equal((await call()).statusCode, 200, 'the key arrives with the next allowed fetch')
  t.equal(jwks.fetches, 2)
})

test('issuer and audience are checked on JWKS tokens', async (t) => {
  const sessions = await startUpstream(t, 'sessions')
  const jwks = await startJwks(t, [k1.jwk])
  const { app } = await build(t, {
    SESSIONS_URLS: sessions.url,
    JWT_JWKS_URL: jwks.url,
    JWT_ISSUER: 'https://idp.example',
    JWT_AUDIENCE: 'session-platform'
  })
  const call = (claims: Record<string, unknown>) => app.inject({ method: 'GET', url: '/api/v1/sessions', headers: bearer(sign(k1, claims)) })
  t.equal((await call({ iss: 'https://idp.example', aud: 'session-platform' })).statusCode, 200)
  for (const claims of [
    { aud: 'session-platform' },
    { iss: 'https://evil.example', aud: 'session-platform' },
    { iss: 'https://idp.example', aud: 'other' }
  ]) {
    const res = await call(claims)
    t.equal(res.statusCode, 401)
    t.equal(res.json().message, 'The token is not valid: the issuer or audience is not accepted', JSON.stringify(claims))
  }
})
