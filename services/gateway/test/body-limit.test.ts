import { execFile } from 'node:child_process'
import { request } from 'node:http'
import { connect } from 'node:net'
import { promisify } from 'node:util'
import { test } from 'tap'
import { bearer, drainMetrics, testToken, waitFor } from '@platform/kit/testing'
import { build, deadUrl } from './helper.js'
import { startUpstream } from './upstream.js'

const run = promisify(execFile)
const KiB = 1024
const MiB = 1024 * 1024
const user = bearer(testToken('u1', ['user']))

interface Sent {
  status: number
  body: { code?: string; bytes?: number; message?: string }
  connection: string | undefined
}

/**
 * Streams `size` bytes in 256 KiB chunks (chunked unless `declare` sends a Content-Length), respecting
 * backpressure; resolves with the answer even when the gateway answers before the body is complete.
 */
function send(url: string, path: string, size: number, headers: Record<string, string> = {}, declare?: number): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, {
      method: 'POST',
      headers: {
        ...user,
        'content-type': 'application/octet-stream',
        ...headers,
        ...(declare !== undefined ? { 'content-length': String(declare) } : {})
      }
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}'), connection: res.headers.connection }))
    })
    req.on('error', (err) => (answered ? undefined : reject(err)))
    let answered = false
    req.on('response', () => (answered = true))
    const chunk = Buffer.alloc(256 * 1024, 97)
    let sent = 0
    const pump = () => {
      while (sent < size && !answered && !req.destroyed) {
        const n = Math.min(chunk.length, size - sent)
        sent += n
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump)
      }
      if (sent >= size) req.end()
    }
    pump()
  })
}

interface Flooded {
  /** What the gateway answered, as raw HTTP. */
  response: string
  /** Body bytes this client handed to its socket before the gateway closed the connection. */
  written: number
}

interface FloodOptions {
  /** A Content-Length to send under; without it the body is chunked and endless. */
  declare?: number
  /** Stop writing (without closing) after this many bytes… */
  stopAfter?: number
  /** …and write on without end once this resolves. */
  resume?: Promise<unknown>
}

/**
 * A client that ignores the answer and writes a body until the gateway closes the connection. While it
 * has more to write it keeps its side open when the gateway ends its own (half-open).
 */
function flood(url: string, path: string, opts: FloodOptions = {}): Promise<Flooded> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true })
    const chunk = Buffer.alloc(64 * KiB, 98)
    const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
    let limit = opts.stopAfter ?? opts.declare ?? Infinity
    let response = ''
    let written = 0
    const pump = () => {
      while (written < limit && !socket.destroyed) {
        written += chunk.length
        if (!socket.write(opts.declare === undefined ? framed : chunk)) return void socket.once('drain', pump)
      }
    }
    void opts.resume?.then(() => {
      limit = Infinity
      pump()
    })
    socket.on('data', (d: Buffer) => (response += d.toString('latin1')))
    // The gateway ended its side: a client done writing closes its own, one still writing writes on.
    socket.on('end', () => (written >= limit && !opts.resume ? socket.end() : undefined))
    socket.on('error', () => {})
    socket.on('close', () => resolve({ response, written }))
    socket.write(
      [
        `POST ${path} HTTP/1.1`,
        `host: ${hostname}:${port}`,
        `authorization: ${user.authorization}`,
        'content-type: application/octet-stream',
        opts.declare === undefined ? 'transfer-encoding: chunked' : `content-length: ${opts.declare}`,
        '',
        ''
      ].join('\r\n')
    )
    pump()
  })
}

async function setup(t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const sessions = await startUpstream(t, 'sessions')
  const { url, app } = await build(t, { SESSIONS_URLS: sessions.url, ...env }, { listen: true })
  return { url, sessions, ...drainMetrics(app) }
}

const statusLine = (raw: string) => raw.split('\r\n')[0]
const bodyOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { code: string }

test('an 11 MiB streamed body is cut at 10 MiB with 413 PAYLOAD_TOO_LARGE', async (t) => {
  const { url, sessions } = await setup(t)
  const res = await send(url, '/api/v1/sessions/upload', 11 * MiB)
  t.equal(res.status, 413)
  t.equal(res.body.code, 'PAYLOAD_TOO_LARGE')
  t.equal(res.body.message, 'The body is larger than the 10485760 bytes the gateway accepts')
  t.equal(res.connection, 'close')
  t.ok(
    sessions.hits.every((h) => h.bytes <= 10 * MiB),
    'the upstream never received a complete oversized body'
  )
})

test('a declared Content-Length over the limit is refused before any upstream is contacted', async (t) => {
  const { url, sessions } = await setup(t)
  const res = await send(url, '/api/v1/sessions/upload', 64 * 1024, {}, 11 * MiB)
  t.equal(res.status, 413)
  t.equal(res.body.code, 'PAYLOAD_TOO_LARGE')
  t.equal(sessions.hits.length, 0)
})

test('a body that may be retried (Idempotency-Key) is held to the same limit', async (t) => {
  const { url, sessions } = await setup(t)
  const res = await send(url, '/api/v1/sessions/upload', 11 * MiB, { 'idempotency-key': 'big-1' })
  t.equal(res.status, 413)
  t.equal(res.body.code, 'PAYLOAD_TOO_LARGE')
  t.equal(sessions.hits.length, 0, 'buffered bodies never leave the gateway when too large')
})

test('a 9 MiB streamed body arrives whole', async (t) => {
  const { url, sessions } = await setup(t)
  const res = await send(url, '/api/v1/sessions/upload', 9 * MiB)
  t.equal(res.status, 200)
  t.equal(res.body.bytes, 9 * MiB)
  t.equal(sessions.hits[0]?.bytes, 9 * MiB)
  const idempotent = await send(url, '/api/v1/sessions/upload', 9 * MiB, { 'idempotency-key': 'k' })
  t.equal(idempotent.status, 200)
  t.equal(idempotent.body.bytes, 9 * MiB)
})

/**
 * Clients in a process of their own, as real clients are (sharing the gateway's event loop orders their
 * reads and the gateway's close as no real client sees them): Node's global fetch or undici's request,
 * sending `size` bytes from a Buffer (Content-Length) or a stream (chunked), one upload after another.
 * Prints each answer, or the code of the failure.
 */
const CLIENT = `
const [url, authorization, cases] = process.argv.slice(1)
const { request } = await import('undici')
const headers = { authorization, 'content-type': 'application/octet-stream' }
async function* stream(size) { for (let sent = 0; sent < size; sent += 262144) yield Buffer.alloc(262144, 97) }
async function upload({ size, how, client }) {
  const body = how === 'declared' ? Buffer.alloc(size, 97) : client === 'fetch' ? ReadableStream.from(stream(size)) : stream(size)
  try {
    if (client === 'fetch') {
      const res = await fetch(url, { method: 'POST', headers, body, duplex: 'half' })
      return { status: res.status, connection: res.headers.get('connection'), code: (await res.json()).code }
    }
    const res = await request(url, { method: 'POST', headers, body })
    return { status: res.statusCode, connection: res.headers.connection, code: (await res.body.json()).code }
  } catch (err) {
    return { failed: err.cause?.code ?? err.code ?? err.message }
  }
}
const results = []
for (const c of JSON.parse(cases)) results.push(await upload(c))
console.log(JSON.stringify(results))`

interface Upload {
  size: number
  how: 'declared' | 'streamed'
  client: 'fetch' | 'undici'
}

async function uploads(url: string, cases: Upload[]) {
  const args = ['--input-type=module', '-e', CLIENT, `${url}/api/v1/sessions/upload`, user.authorization, JSON.stringify(cases)]
  const { stdout } = await run(process.execPath, args, { cwd: import.meta.dirname })
  return JSON.parse(stdout) as Array<{ status: number; connection: string; code: string } | { failed: string }>
}

const refused = { status: 413, connection: 'close', code: 'PAYLOAD_TOO_LARGE' }

test("Node's fetch and undici see the 413 of an 11 MiB body, declared or streamed, not a reset connection", async (t) => {
  const { url, sessions } = await setup(t)
  const cases: Upload[] = [
    { size: 11 * MiB, how: 'declared', client: 'fetch' },
    { size: 11 * MiB, how: 'streamed', client: 'fetch' },
    { size: 11 * MiB, how: 'declared', client: 'undici' },
    { size: 11 * MiB, how: 'streamed', client: 'undici' }
  ]
  t.same(
    await uploads(url, cases),
    cases.map(() => refused)
  )
  t.ok(sessions.hits.every((h) => h.bytes <= 10 * MiB))
})

test("Node's fetch sees the 413 of a body ten times the limit, more than socket buffers hold", async (t) => {
  // Without the drain the gateway's close resets the connection under the client's writes: EPIPE.
  const { url } = await setup(t, { REQUEST_SIZE_LIMIT: String(MiB), REQUEST_DRAIN_BYTES: String(16 * MiB) })
  const cases: Upload[] = []
  for (let i = 0; i < 3; i++) cases.push({ size: 11 * MiB, how: 'declared', client: 'fetch' }, { size: 11 * MiB, how: 'streamed', client: 'fetch' })
  t.same(
    await uploads(url, cases),
    cases.map(() => refused)
  )
})

test('an answer of its own while the body is still coming (an open breaker) is read too: the body is drained', async (t) => {
  const { url } = await setup(t, { SESSIONS_URLS: await deadUrl(), MAX_RETRIES: '0', CIRCUIT_BREAKER_FAILURE_THRESHOLD: '1' })
  const first = await uploads(url, [{ size: 1024, how: 'declared', client: 'fetch' }])
  t.same(first, [{ status: 502, connection: 'keep-alive', code: 'UPSTREAM_ERROR' }], 'a small body, read whole: nothing to drain')
  const cases: Upload[] = [
    { size: 8 * MiB, how: 'declared', client: 'fetch' },
    { size: 8 * MiB, how: 'streamed', client: 'fetch' }
  ]
  t.same(
    await uploads(url, cases),
    cases.map(() => ({ status: 503, connection: 'close', code: 'CIRCUIT_OPEN' }))
  )
})

test('an endless streamed body is read at most REQUEST_DRAIN_BYTES past the refusal, then the connection closes', async (t) => {
  const { url, sessions, drained } = await setup(t, { REQUEST_SIZE_LIMIT: String(64 * KiB), REQUEST_DRAIN_BYTES: String(256 * KiB) })
  const res = await flood(url, '/api/v1/sessions/upload')
  t.equal(statusLine(res.response), 'HTTP/1.1 413 Payload Too Large', 'the answer came before the close')
  t.equal(bodyOf(res.response).code, 'PAYLOAD_TOO_LARGE')
  t.match(res.response, /\r\nconnection: close\r\n/i)
  const drain = await drained()
  t.same(drain.ends, { bytes: 1 }, 'cut by the byte bound')
  // A socket read is at most 64 KiB: the drain stops within one read past the bound, and keeps nothing.
  t.ok(drain.bytes > 256 * KiB && drain.bytes <= 320 * KiB, `drained ${drain.bytes} bytes`)
  t.ok(
    sessions.hits.every((h) => h.bytes <= 64 * KiB),
    'the upstream never got more than the limit'
  )
})

test('a declared 1 GiB body is read at most REQUEST_DRAIN_BYTES, then the connection closes', async (t) => {
  const { url, sessions, drained } = await setup(t, { REQUEST_SIZE_LIMIT: String(64 * KiB), REQUEST_DRAIN_BYTES: String(256 * KiB) })
  const res = await flood(url, '/api/v1/sessions/upload', { declare: 1024 * MiB })
  t.equal(statusLine(res.response), 'HTTP/1.1 413 Payload Too Large')
  const drain = await drained()
  t.same(drain.ends, { bytes: 1 })
  t.ok(drain.bytes > 256 * KiB && drain.bytes <= 320 * KiB, `drained ${drain.bytes} bytes`)
  t.ok(res.written < 1024 * MiB, 'the client was stopped long before its declared length')
  t.equal(sessions.hits.length, 0)
})

test('a refused body that stalls is given up on after REQUEST_DRAIN_TIMEOUT_MS', async (t) => {
  const { url, metric, drained } = await setup(t, {
    REQUEST_SIZE_LIMIT: String(64 * KiB),
    REQUEST_DRAIN_BYTES: String(MiB),
    REQUEST_DRAIN_TIMEOUT_MS: '200'
  })
  // It stalls with its side open; once the gateway has given up it writes on and finds the connection closed.
  const gaveUp = waitFor(async () => (await metric('http_body_drains_total{end="time"}')) === 1)
  const res = await flood(url, '/api/v1/sessions/upload', { declare: 10 * MiB, stopAfter: 256 * KiB, resume: gaveUp })
  t.equal(statusLine(res.response), 'HTTP/1.1 413 Payload Too Large')
  const drain = await drained()
  t.same(drain.ends, { time: 1 })
  t.equal(drain.bytes, 256 * KiB, 'what came before the stall was read')
})

test('a refused body sent whole is drained to its end: the client reads the 413, then an orderly close', async (t) => {
  const { url, drained } = await setup(t, { REQUEST_SIZE_LIMIT: String(64 * KiB), REQUEST_DRAIN_BYTES: String(MiB) })
  const res = await flood(url, '/api/v1/sessions/upload', { declare: 512 * KiB })
  t.equal(res.written, 512 * KiB)
  t.equal(statusLine(res.response), 'HTTP/1.1 413 Payload Too Large')
  const drain = await drained()
  t.same(drain.ends, { complete: 1 })
  t.equal(drain.bytes, 512 * KiB, 'every byte of the body, read and dropped')
})
