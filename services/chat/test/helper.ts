import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { WebSocket, type ClientOptions } from 'ws'
import { fastifyOptions, loadConfig } from '@platform/kit'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  testToken,
  uniqueName,
  waitFor,
  type TestSchema
} from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

export interface Tap {
  teardown(fn: () => unknown): void
}

/** What several instances of one test share: the schema, the Redis prefix and the NATS namespace. */
export interface Shared {
  schema: TestSchema
  ns: string
}

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
export async function shared(t: Tap): Promise<Shared> {
  const schema = await createTestSchema(migrationsDir, 'chat')
  const ns = uniqueName('c')
  t.teardown(async () => {
    await schema.drop()
    await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => {})
    await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => {})
  })
  return { schema, ns }
}

/**
 * The chat app listening on 127.0.0.1 (a free port), on its own schema, Redis key prefix and NATS
 * namespace unless `share` is given (two instances of one deployment). `env` overrides variables;
 * `opts.now` is the instance's clock (token expiry on open sockets), which a test moves instead of waiting.
 */
export async function build(t: Tap, env: Record<string, string> = {}, share?: Shared, opts: { now?: () => number } = {}): Promise<Built> {
  const s = share ?? (await shared(t))
  const config = loadConfig(ConfigSchema, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: s.schema.url,
    DATABASE_SCHEMA: s.schema.schema,
    DATABASE_POOL_SIZE: '3',
    DATABASE_TIMEOUT_MS: '5000',
    REDIS_KEY_PREFIX: `${s.ns}:`,
    NATS_NAMESPACE: s.ns,
    JWT_SECRET: TEST_JWT_SECRET,
    OUTBOX_POLL_MS: '50',
    // Shutdown waits for work in flight; a test that holds it up releases it itself, however slow the machine.
    SHUTDOWN_GRACE_MS: '10000',
    ...env
  })
  const fastify = Fastify(fastifyOptions(config))
  // Unencapsulated, so tests can reach the app's decorators (chatHub, nats, ...).
  await fastify.register(fp(app), { config, ...(opts.now ? { now: opts.now } : {}) })
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  const { port } = fastify.server.address() as { port: number }
  let closed: Promise<void> | null = null
  const close = () => (closed ??= fastify.close())
  t.teardown(close)
  // Wait for NATS so that live fan-out between instances is on from the first frame.
  await waitFor(() => fastify.nats.connected, 20_000)
  return { app: fastify, config, schema: s.schema, shared: s, wsUrl: `ws://127.0.0.1:${port}/ws/chat`, close }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>

/** A real WebSocket client that records every frame it receives. */
export class Client {
  readonly frames: Frame[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  private waiters: Array<() => void> = []

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      for (const w of this.waiters.splice(0)) w()
    })
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
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
      if (i >= 0) return this.frames.splice(i, 1)[0] as Frame
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
