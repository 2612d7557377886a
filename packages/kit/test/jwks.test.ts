import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import { test } from 'tap'
import Fastify from 'fastify'
import { createSigner } from 'fast-jwt'
import { authOptions, authPlugin, errorHandlerPlugin, loadConfig, serviceConfig } from '../src/index.js'
import { TEST_JWT_SECRET, testClock, testToken } from '../src/testing/index.js'

/** Any service (not only the gateway) verifies identity-provider tokens once JWT_JWKS_URL is set. */
test('a service verifies RS256 tokens from a JWKS, beside HS256, and re-fetches for a new kid', async (t) => {
  const first = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const second = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = (k: typeof first, kid: string) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' })
  const state = { keys: [jwk(first, 'one')], fetches: 0 }
  const idp = createServer((_req, res) => {
    state.fetches++
    res.end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => idp.close(() => r())))

  const config = loadConfig(serviceConfig({ port: 0, schema: 'x', name: 'x' }, {}), {
    JWT_SECRET: TEST_JWT_SECRET,
    JWT_JWKS_URL: `http://127.0.0.1:${(idp.address() as { port: number }).port}/jwks`,
    JWKS_REFETCH_INTERVAL_SECONDS: '60',
    JWKS_CACHE_TTL_SECONDS: '0'
  })
  // The re-fetch interval runs on a clock the test moves: no waiting, and no fetch the test did not ask for.
  const clock = testClock().freeze()
  const options = authOptions(config)
  options.jwks!.now = clock.now
  const app = Fastify()
  await app.register(errorHandlerPlugin)
  await app.register(authPlugin, options)
  app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
  await app.ready()
  t.teardown(() => app.close())

  const sign = (key: typeof first, kid: string) =>
    createSigner({ key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', kid, expiresIn: 60_000 })({
      sub: 'idp-user',
      roles: ['user']
    })
  const me = (token: string) => app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })

  t.equal(state.fetches, 1)
  const res = await me(sign(first, 'one'))
  t.equal(res.statusCode, 200)
  t.same(res.json().roles, ['user'])
  t.equal((await me(testToken('u1'))).statusCode, 200, 'HS256 as before')

  state.keys = [jwk(second, 'two')]
  t.throws(() => app.verifyToken(sign(second, 'two')), { code: 'TOKEN_INVALID' }, 'the sync check only knows cached keys')
  t.equal((await me(sign(second, 'two'))).statusCode, 401, 'inside the interval an unknown kid fetches nothing')
  t.equal(state.fetches, 1)
  clock.advance(60_000)
  t.equal((await me(sign(second, 'two'))).statusCode, 200, 'the new kid passes after a re-fetch')
  t.equal(state.fetches, 2, 'exactly one fetch once the interval has passed')
  t.equal(app.verifyToken(sign(second, 'two')).sub, 'idp-user')
  t.equal((await me(sign(first, 'one'))).statusCode, 401, 'the rotated-out kid is gone')
  t.equal(state.fetches, 2, 'and asking for it again inside the interval fetches nothing')
})
