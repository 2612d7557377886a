import t from 'tap'
import { Type } from 'typebox'
import { ConfigError, DEV_JWT_SECRET, jwtSecret, loadConfig, serviceConfig } from '../src/index.js'

const schema = serviceConfig({ port: 3999, schema: 'demo', name: 'demo' }, { DEMO_LIMIT: Type.Integer({ minimum: 1, default: 7 }) })

t.test('defaults and conversions apply', async (t) => {
  const c = loadConfig(schema, { DEMO_LIMIT: '12', PORT: '4000', UNRELATED: 'x' })
  t.equal(c.DEMO_LIMIT, 12)
  t.equal(c.PORT, 4000)
  t.equal(c.DATABASE_SCHEMA, 'demo')
  t.equal(c.SERVICE_NAME, 'demo')
  t.equal(c.REDIS_URL, 'redis://127.0.0.1:6379')
  t.equal(c.LOG_LEVEL, 'info')
  t.equal((c as Record<string, unknown>).UNRELATED, undefined, 'only declared variables are read')
})

t.test('a bad variable stops boot with a message that names it', async (t) => {
  t.throws(() => loadConfig(schema, { PORT: 'eighty' }), { name: 'ConfigError', message: /PORT: .*\(got "eighty"\)/ })
  t.throws(() => loadConfig(schema, { DEMO_LIMIT: '0' }), { message: /DEMO_LIMIT/ })
  t.throws(() => loadConfig(schema, { REDIS_URL: 'http://x' }), { message: /REDIS_URL/ })
  t.throws(() => loadConfig(schema, { LOG_LEVEL: 'loud' }), { message: /LOG_LEVEL/ })
  t.throws(() => loadConfig(schema, { DATABASE_SCHEMA: 'Bad-Name' }), { message: /DATABASE_SCHEMA/ })
  try {
    loadConfig(schema, { PORT: '-1', DEMO_LIMIT: 'x' })
    t.fail('should throw')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    t.same((err as ConfigError).problems.map((p) => p.split(':')[0]).sort(), ['DEMO_LIMIT', 'PORT'], 'every bad variable is named')
  }
})

t.test('a missing required variable is named', async (t) => {
  const strict = Type.Object({ MUST: Type.String() })
  t.throws(() => loadConfig(strict, {}), { message: /MUST/ })
})

t.test('the development JWT secret is refused in production', async (t) => {
  t.equal(jwtSecret({ NODE_ENV: 'development', JWT_SECRET: undefined }), DEV_JWT_SECRET)
  t.equal(jwtSecret({ NODE_ENV: 'production', JWT_SECRET: 'a-real-secret-of-some-length' }), 'a-real-secret-of-some-length')
  t.throws(() => jwtSecret({ NODE_ENV: 'production', JWT_SECRET: undefined }), { message: /JWT_SECRET/ })
  t.throws(() => loadConfig(schema, { JWT_SECRET: 'short' }), { message: /JWT_SECRET/ })
})
