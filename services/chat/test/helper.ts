import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { WebSocket, type ClientOptions } from 'ws'
import {
  buildService,
  sharedResources,
  testToken,
  waitFor,
  type Shared as SharedResources,
  type Teardown,
  type TestSchema
} from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

export type Tap = Teardown

/** What several instances of one test share: the schema, the Redis prefix and the NATS namespace. */
export type Shared = Required<SharedResources>

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
  shared: Shared
  /** ws://127.0.0.1:<port>/ws/chat */
  wsUrl: string
  /** Closes the instance now (what teardown would do), e.g. to test graceful shutdown. */
  close(): Promise<void>
}

/** A schema, Redis prefix and NATS namespace that several instances of one test use, dropped at teardown. */
export async function shared(t: Teardown): Promise<Shared> {
  return sharedResources(t, { prefix: 'chat', migrations: migrationsDir })
}

/**
 * The chat app listening on 127.0.0.1 (a free port), on its own schema, Redis key prefix and NATS
 * namespace unless `share` is given (two instances of one deployment). `env` overrides variables;
 * `opts.now` is the instance's clock (token expiry on open sockets), which a test moves instead of waiting.
 */
export async function build(t: Teardown, env: Record<string, string> = {}, share?: Shared, opts: { now?: () => number } = {}): Promise<Built> {
  const s = share ?? (await shared(t))
  const built = await buildService(t, {
    app,
    configSchema: ConfigSchema,
    shared: s,
    // Shutdown waits for work in flight; a test that holds it up releases it itself, however slow the machine.
    env: { SHUTDOWN_GRACE_MS: '10000', ...env },
    options: opts.now ? { now: opts.now } : {},
    listen: true
  })
  // Wait for NATS so that live fan-out between instances is on from the first frame.
  await waitFor(() => built.app.nats.connected, 20_000)
  const wsUrl = `${built.url.replace('http:', 'ws:')}/ws/chat`
  return { app: built.app, config: built.config, schema: s.schema, shared: s, wsUrl, close: () => built.close() }
}

/** The item at `i`, which the test has just put there (a missing one fails the test here). */
export function at<T>(items: readonly T[], i: number): T {
  const item = items[i]
  if (item === undefined) throw new Error(`no item ${i} in ${items.length}`)
  return item
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>

/** A real WebSocket client that records every frame it receives. */
export class Client {
  /** Frames received and not taken yet (by `next`, `request`, `drain`). */
  readonly frames: Frame[] = []
  /** Every frame received, in order, taken or not. */
  readonly received: Frame[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  private waiters: Array<() => void> = []

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
      const frame: Frame = JSON.parse(bytes.toString('utf8'))
      this.frames.push(frame)
      this.received.push(frame)
      for (const w of this.waiters.splice(0)) w()
    })
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    // A refused or cut connection is reported through `closed`; the tests assert on that.
    ws.on('error', () => {})
  }

  /** Opens a connection; `token` goes in ?token= unless `protocols` carries it. */
  static async open(url: string, opts: { token?: string; protocols?: string[]; ws?: ClientOptions } = {}): Promise<Client> {
    const target = opts.token ? `${url}?token=${encodeURIComponent(opts.token)}` : url
    const ws = new WebSocket(target, opts.protocols ?? [], opts.ws ?? {})
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return client
  }

  /** Opens a connection and waits for its welcome. */
  static async connect(url: string, userOrToken?: string | null, opts: { protocols?: string[]; ws?: ClientOptions } = {}): Promise<Client> {
    const token = userOrToken === undefined || userOrToken === null ? undefined : userOrToken.includes('.') ? userOrToken : testToken(userOrToken)
    const client = await Client.open(url, { ...(token ? { token } : {}), ...opts })
    await client.next('welcome')
    return client
  }

  send(frame: Frame | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The first frame not taken yet that matches (by type or predicate); waits for it. */
  async next(match: string | ((f: Frame) => boolean), timeoutMs = 20_000): Promise<Frame> {
    const test = typeof match === 'string' ? (f: Frame) => f.type === match : match
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.frames.findIndex(test)
      const [found] = i >= 0 ? this.frames.splice(i, 1) : []
      if (found) return found
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new Error(`no frame matching ${String(match)} within ${timeoutMs} ms; have ${JSON.stringify(this.frames).slice(0, 500)}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Sends a frame and returns the reply that echoes its ref. */
  async request(frame: Frame, timeoutMs = 20_000): Promise<Frame> {
    const ref = frame.ref ?? `r${Math.random().toString(36).slice(2)}`
    this.send({ ...frame, ref })
    return this.next((f) => f.ref === ref, timeoutMs)
  }

  /** Starts a session (or resumes one) and returns the session frame. */
  async init(chatSessionId?: string, lastMessageId?: string): Promise<Frame> {
    return this.request({
      type: 'session_init',
      ...(chatSessionId ? { chatSessionId } : {}),
      ...(lastMessageId ? { lastMessageId } : {})
    })
  }

  /** Every frame of a type received so far that was not taken, taken now. */
  drain(type: string): Frame[] {
    const out = this.frames.filter((f) => f.type === type)
    for (let i = this.frames.length - 1; i >= 0; i--) if (this.frames[i]?.type === type) this.frames.splice(i, 1)
    return out
  }

  close(): void {
    this.ws.close()
  }
}

/** Opens clients and closes them at teardown (before the apps close). */
export function clients(t: Tap) {
  const open: Client[] = []
  t.teardown(() => {
    for (const c of open) c.ws.terminate()
  })
  return async (url: string, userOrToken?: string | null, opts: { protocols?: string[]; ws?: ClientOptions } = {}) => {
    const c = await Client.connect(url, userOrToken, opts)
    open.push(c)
    return c
  }
}
