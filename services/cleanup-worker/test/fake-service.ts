import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import type { Teardown } from '@platform/kit/testing'

export interface Call {
  method: string
  path: string
  body: unknown
  sub: string | null
  roles: string[]
  at: number
}

export interface Answer {
  status: number
  body?: unknown
  /** Answer after this long (a slow cleanup). */
  delayMs?: number
  /** Answer once this settles: a cleanup the test holds up and lets go of at the moment it chooses. */
  until?: Promise<unknown>
  /** Reset the connection instead of answering. */
  reset?: boolean
}

/** Route key `METHOD /path` → the next answer (a function sees the call; a list is used up in order, the last one repeating). */
export type Script = Record<string, Answer | Answer[] | ((call: Call) => Answer)>

export interface FakeService {
  url: string
  calls: Call[]
  script: Script
  /** Refuses connections (the service is down) until `up()`. */
  down(): Promise<void>
  up(): Promise<void>
  close(): Promise<void>
}

const Claims = Type.Object({ sub: Type.Optional(Type.String()), roles: Type.Optional(Type.Array(Type.String())) })

/** The caller's claims (the fake trusts the signature: the real services verify it in their own tests). */
function who(req: IncomingMessage): { sub: string | null; roles: string[] } {
  const payload = /^Bearer [^.]*\.([^.]*)\./.exec(req.headers.authorization ?? '')?.[1]
  if (payload === undefined) return { sub: null, roles: [] }
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    return Value.Check(Claims, claims) ? { sub: claims.sub ?? null, roles: claims.roles ?? [] } : { sub: null, roles: [] }
  } catch {
    return { sub: null, roles: [] }
  }
}

/** The scripted answer to a call: unscripted routes answer 404, a list is used up in order (its last repeating). */
function answerTo(script: Script, used: Map<string, number>, call: Call): Answer {
  const key = `${call.method} ${call.path}`
  const entry = script[key]
  if (!entry) return { status: 404, body: { error: 'Not Found', message: 'no route', code: 'NOT_FOUND', requestId: 'x' } }
  if (typeof entry === 'function') return entry(call)
  if (!Array.isArray(entry)) return entry
  const i = used.get(key) ?? 0
  used.set(key, i + 1)
  return entry[Math.min(i, entry.length - 1)]!
}

/**
 * A stand-in for task-sessions or chat (or sessions' stats) on a real port: records every call and answers
 * what the test scripts; unscripted routes answer 404 like a route that does not exist yet.
 */
export async function fakeService(t: Teardown, script: Script = {}): Promise<FakeService> {
  const calls: Call[] = []
  const used = new Map<string, number>()
  const sockets = new Set<Socket>()
  let server: Server | null = null
  let port = 0

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      const call: Call = { method: req.method ?? 'GET', path, body: text ? JSON.parse(text) : undefined, ...who(req), at: Date.now() }
      calls.push(call)
      const answer = answerTo(fake.script, used, call)
      const send = () => {
        if (answer.reset) return void req.socket.destroy()
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        res.end(answer.body === undefined ? '' : JSON.stringify(answer.body))
      }
      if (answer.until) void answer.until.then(send, send)
      else if (answer.delayMs) setTimeout(send, answer.delayMs)
      else send()
    })
  }

  const up = async () => {
    if (server) return
    const s = createServer(handle)
    s.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve))
    const address = s.address()
    if (address === null || typeof address === 'string') throw new Error('the fake service is not on a TCP port')
    port = address.port
    server = s
  }
  const down = async () => {
    const s = server
    server = null
    if (!s) return
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
  await up()
  const fake: FakeService = { url: `http://127.0.0.1:${port}`, calls, script, down, up, close: down }
  t.teardown(down)
  return fake
}
