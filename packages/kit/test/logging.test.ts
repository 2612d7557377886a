import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import { fastifyOptions, healthPlugin, logFormat, loggerOptions, metricsPlugin, prettyLine, type LogFormatSetting } from '../src/index.js'

/** Everything a logger writes, as text. */
function capture() {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString()
      done()
    }
  })
  return { stream, text: () => text, lines: () => text.split('\n').filter(Boolean) }
}

/** An app built with the kit's options (request logging included) whose logger writes to `out`. */
async function appLoggingTo(level: string, format: LogFormatSetting, isTTY = false) {
  const out = capture()
  const options = fastifyOptions({ LOG_LEVEL: level, LOG_FORMAT: format, SERVICE_NAME: 'demo', BODY_LIMIT_BYTES: 1024 })
  const app = Fastify({ ...options, logger: loggerOptions(level, 'demo', { format, isTTY, destination: out.stream }) })
  await app.register(healthPlugin)
  await app.register(metricsPlugin)
  app.get('/api/v1/things', async (request) => {
    request.log.info({ headers: request.headers, token: 'tok-in-a-field', user: { password: 'hunter2' } }, 'with secrets')
    return { ok: true }
  })
  return { app, out }
}

const secrets = {
  authorization: 'Bearer aaa.bbb-secret.ccc',
  cookie: 'sid=cookie-secret',
  'sec-websocket-protocol': 'chat, ddd.eee-secret.fff'
}

t.test('the format: pretty when asked or on a terminal, JSON otherwise', async (t) => {
  t.equal(logFormat('pretty', false), 'pretty')
  t.equal(logFormat('json', true), 'json')
  t.equal(logFormat('auto', true), 'pretty')
  t.equal(logFormat('auto', false), 'json')
  t.equal(logFormat(undefined, false), 'json')
  t.equal(logFormat(undefined, true), 'pretty')
})

t.test('JSON: one info line per request, none for /health, /ready and /metrics, secrets redacted', async (t) => {
  const { app, out } = await appLoggingTo('info', 'json')
  t.teardown(() => app.close())
  for (const url of ['/health', '/ready', '/metrics', '/health?probe=1']) t.equal((await app.inject({ url })).statusCode, 200, url)
  t.equal(out.text(), '', 'probes write nothing at info')

  const res = await app.inject({ url: '/api/v1/things?token=query-secret&x=1', headers: { ...secrets, 'x-request-id': 'req-9' } })
  t.equal(res.statusCode, 200)
  const lines = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>)
  t.strictSame(
    lines.map((l) => [l.level, l.msg, l.service, l.reqId]),
    [
      [30, 'with secrets', 'demo', 'req-9'],
      [30, 'request completed', 'demo', 'req-9']
    ]
  )
  const done = lines[1]!
  t.strictSame(done.req, { method: 'GET', url: '/api/v1/things?token=[Redacted]&x=1', remoteAddress: '127.0.0.1', requestId: 'req-9' })
  t.strictSame(done.res, { statusCode: 200 })
  t.type(done.responseTime, 'number')
  const logged = lines[0] as { headers: Record<string, string>; token: string; user: { password: string } }
  t.equal(logged.headers.authorization, '[Redacted]')
  t.equal(logged.headers.cookie, '[Redacted]')
  t.equal(logged.headers['sec-websocket-protocol'], '[Redacted]')
  t.equal(logged.token, '[Redacted]')
  t.equal(logged.user.password, '[Redacted]')
  for (const secret of ['bbb-secret', 'cookie-secret', 'eee-secret', 'query-secret', 'tok-in-a-field', 'hunter2']) {
    t.notMatch(out.text(), secret, `${secret} is not in the log`)
  }
})

t.test('probes are logged at debug, not dropped', async (t) => {
  const { app, out } = await appLoggingTo('debug', 'json')
  t.teardown(() => app.close())
  await app.inject({ url: '/health' })
  await app.inject({ url: '/metrics' })
  const lines = out.lines().map((l) => JSON.parse(l) as { level: number; msg: string; req?: { url: string } })
  t.strictSame(
    lines.map((l) => [l.level, l.msg, l.req?.url]),
    [
      [20, 'incoming request', '/health'],
      [20, 'request completed', '/health'],
      [20, 'incoming request', '/metrics'],
      [20, 'request completed', '/metrics']
    ]
  )
})

t.test('pretty: readable lines led by the service name, the same redaction, no JSON', async (t) => {
  const { app, out } = await appLoggingTo('info', 'pretty')
  t.teardown(() => app.close())
  await app.inject({ url: '/health' })
  await app.inject({ url: '/api/v1/things?token=query-secret', headers: secrets })
  const lines = out.lines()
  t.equal(lines.length, 2, 'one line for the handler, one for the request; none for the probe')
  for (const line of lines) {
    t.ok(line.startsWith('demo '), 'the service name comes first')
    t.throws(() => JSON.parse(line))
    t.notMatch(line, '\x1b[', 'no colours when not on a terminal')
  }
  t.match(lines[0], / INFO: with secrets /)
  t.match(lines[1], /INFO: GET \/api\/v1\/things\?token=\[Redacted\] 200 \([0-9.]+ ms\)/)
  for (const secret of ['bbb-secret', 'cookie-secret', 'eee-secret', 'query-secret', 'tok-in-a-field', 'hunter2']) {
    t.notMatch(out.text(), secret, `${secret} is not in the log`)
  }
})

t.test('auto: pretty with colours on a terminal, JSON when piped', async (t) => {
  const tty = await appLoggingTo('info', 'auto', true)
  const piped = await appLoggingTo('info', 'auto', false)
  t.teardown(() => Promise.all([tty.app.close(), piped.app.close()]))
  for (const { app } of [tty, piped]) await app.inject({ url: '/api/v1/things' })
  const ESC = String.fromCharCode(27)
  const line = tty.out.lines()[1]!
  t.ok(line.startsWith(`${ESC}[`), 'the service name is coloured')
  t.match(line.slice(line.indexOf(`${ESC}[39m`)), /GET \/api\/v1\/things 200/)
  t.match(line.replaceAll(ESC, ''), /^\[\d+mdemo +\[39m /)
  t.equal((JSON.parse(piped.out.lines()[1]!) as { msg: string }).msg, 'request completed')
})

t.test('the pretty printer of npm start: JSON lines of any service, other lines behind the name given', async (t) => {
  const pretty = prettyLine({ colorize: false })
  const line = JSON.stringify({ level: 40, time: Date.UTC(2025, 0, 1), service: 'chat', msg: 'nats disconnected', pid: 1, hostname: 'h' })
  t.match(pretty(line, 'ignored'), /^chat +\S+ WARN: nats disconnected$/)
  t.equal(pretty('    at main (file.ts:1:1)', 'gateway'), `${'gateway'.padEnd(14)}     at main (file.ts:1:1)`)
  t.equal(pretty('{not json', 'gateway'), `${'gateway'.padEnd(14)} {not json`)
})
