import { test } from 'tap'
import { ConfigError, loadConfig } from '@platform/kit'
import { ConfigSchema, checkConfig, drainBytes } from '../src/config.js'
import { ProxyRoutes } from '../src/domain/route-table.js'
import { build } from './helper.js'

test('by default a client gets an answer within 10 s: the deadline holds every attempt and the attempt fits in it', async (t) => {
  const config = loadConfig(ConfigSchema, {})
  t.equal(config.REQUEST_DEADLINE_MS, 10_000)
  t.equal(config.UPSTREAM_TIMEOUT_MS, 5000, 'room for one retry on another instance')
  t.doesNotThrow(() => checkConfig(config))
  t.same(
    ProxyRoutes.filter((r) => r.deadlineMs !== undefined).map((r) => [r.prefix, r.timeoutMs, r.deadlineMs]),
    [['/api/v1/admin/cleanup', 30_000, 30_000]],
    'the one documented exception: a cleanup run'
  )
})

test('a refused body is drained up to twice the body limit, or REQUEST_DRAIN_BYTES, for at most 5 s', async (t) => {
  const config = loadConfig(ConfigSchema, {})
  t.equal(drainBytes(config), 2 * 10 * 1024 * 1024)
  t.equal(config.REQUEST_DRAIN_TIMEOUT_MS, 5000)
  t.equal(drainBytes(loadConfig(ConfigSchema, { REQUEST_SIZE_LIMIT: '4096' })), 8192)
  t.equal(drainBytes(loadConfig(ConfigSchema, { REQUEST_DRAIN_BYTES: '0' })), 0)
})

test('an attempt timeout longer than the deadline stops the gateway, naming the variable', async (t) => {
  await t.rejects(build(t, { UPSTREAM_TIMEOUT_MS: '20000', REQUEST_DEADLINE_MS: '10000' }), {
    constructor: ConfigError,
    message: /UPSTREAM_TIMEOUT_MS: must not exceed REQUEST_DEADLINE_MS \(10000\) \(got 20000\)/
  })
})
