import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Tap } from './helper.js'

/** The port a server of the test's own listens on (a TCP server's address is never a pipe's string). */
export function portOf(server: { address(): AddressInfo | string | null }): number {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the server is not listening on a TCP port')
  return address.port
}

/** `?set=` of a test: header names and values, as JSON. */
function headersToSet(json: string): Array<[string, string | string[]]> {
  const parsed: unknown = JSON.parse(json)
  if (typeof parsed !== 'object' || parsed === null) return []
  return Object.entries(parsed).map(([name, value]): [string, string | string[]] => [name, Array.isArray(value) ? value.map(String) : String(value)])
}

export interface Hit {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bytes: number
}

/** A small real upstream on its own port, which a test can stop (connections refused) and start again. */
export interface TestUpstream {
  url: string
  port: number
  name: string
  hits: Hit[]
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * Answers every path with what it received ({instance, method, url, headers, bytes}). Behaviours:
 * - `…/status/<code>[?retryAfter=s]` answers that status;
 * - `…/flaky/<key>?fail=<n>&code=<c>[&retryAfter=s]` fails the first n hits of that key with code c;
 * - `…/slow?ms=<n>` answers after n ms;
 * - `?set=<json>` adds those response headers, `?size=<n>` answers n bytes of text instead of the echo;
 * - `/health` answers 200.
 * Bodies are streamed and counted, never limited.
 */
export async function startUpstream(t: Tap, name = 'upstream', fixedPort = 0): Promise<TestUpstream> {
  const hits: Hit[] = []
  const flaky = new Map<string, number>()
  let app: FastifyInstance | null = null
  let port = fixedPort

  const build = () => {
    const f = Fastify({ logger: false, forceCloseConnections: true })
    f.removeAllContentTypeParsers()
    f.addContentTypeParser('*', (_req, payload, done) => {
      let n = 0
      payload.on('data', (c: Buffer) => (n += c.length))
      payload.on('end', () => done(null, n))
      payload.on('error', (err) => done(err, undefined))
    })
    f.get('/health', async () => ({ status: 'ok' }))
    f.all('/*', async (request, reply) => answer(request, reply, name, hits, flaky))
    return f
  }

  const start = async () => {
    if (app) return
    app = build()
    await app.listen({ host: '127.0.0.1', port })
    port = portOf(app.server)
  }
  const stop = async () => {
    const a = app
    app = null
    if (a) await a.close()
  }
  await start()
  t.teardown(stop)
  return {
    get url() {
      return `http://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    name,
    hits,
    stop,
    start
  }
}

/** What startUpstream's instance answers (see there). */
async function answer(request: FastifyRequest, reply: FastifyReply, name: string, hits: Hit[], flaky: Map<string, number>) {
  const bytes = typeof request.body === 'number' ? request.body : 0
  hits.push({ method: request.method, url: request.url, headers: request.headers, bytes })
  const q = request.url.indexOf('?')
  const path = q === -1 ? request.url : request.url.slice(0, q)
  const params = new URLSearchParams(q === -1 ? '' : request.url.slice(q + 1))
  const retryAfter = params.get('retryAfter')
  if (retryAfter) reply.header('retry-after', retryAfter)
  const status = /\/status\/(\d{3})$/.exec(path)
  if (status) return reply.code(Number(status[1])).send({ instance: name, code: `STATUS_${status[1]}` })
  const flakyKey = /\/flaky\/([^/]+)$/.exec(path)?.[1]
  if (flakyKey !== undefined) {
    const seen = (flaky.get(flakyKey) ?? 0) + 1
    flaky.set(flakyKey, seen)
    if (seen <= Number(params.get('fail') ?? 0)) return reply.code(Number(params.get('code') ?? 503)).send({ instance: name, attempt: seen })
    reply.removeHeader('retry-after')
    return { instance: name, attempt: seen, bytes }
  }
  if (path.endsWith('/slow')) await new Promise((r) => setTimeout(r, Number(params.get('ms') ?? 100)))
  reply.header('x-upstream-instance', name)
  const degrade = params.get('degrade')
  if (degrade) reply.header('x-degradation-mode', degrade)
  const set = params.get('set')
  if (set) for (const [header, value] of headersToSet(set)) reply.header(header, value)
  const size = params.get('size')
  if (size) return reply.type('text/plain').send(Buffer.alloc(Number(size), 'x'))
  return { instance: name, method: request.method, url: request.url, headers: request.headers, bytes }
}

/** Accepts connections and never answers: an upstream that hangs. */
export async function startFrozenUpstream(t: Tap): Promise<{ url: string; connections: () => number }> {
  const sockets = new Set<Socket>()
  let accepted = 0
  const server: Server = createServer((s) => {
    accepted++
    sockets.add(s)
    // Its sockets are destroyed at teardown; their errors mean nothing here.
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      })
  )
  return { url: `http://127.0.0.1:${portOf(server)}`, connections: () => accepted }
}
