import { request } from 'node:http'
import { test } from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'
import { startUpstream } from './upstream.js'

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
      headers: { ...user, 'content-type': 'application/octet-stream', ...headers, ...(declare !== undefined ? { 'content-length': String(declare) } : {}) }
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

async function setup(t: Parameters<typeof build>[0]) {
  const sessions = await startUpstream(t, 'sessions')
  const { url } = await build(t, { SESSIONS_URLS: sessions.url }, { listen: true })
  return { url, sessions }
}

test('an 11 MiB streamed body is cut at 10 MiB with 413 PAYLOAD_TOO_LARGE', async (t) => {
  const { url, sessions } = await setup(t)
  const res = await send(url, '/api/v1/sessions/upload', 11 * MiB)
  t.equal(res.status, 413)
  t.equal(res.body.code, 'PAYLOAD_TOO_LARGE')
  t.equal(res.body.message, 'The body is larger than the 10485760 bytes the gateway accepts')
  t.equal(res.connection, 'close')
  t.ok(sessions.hits.every((h) => h.bytes <= 10 * MiB), 'the upstream never received a complete oversized body')
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
