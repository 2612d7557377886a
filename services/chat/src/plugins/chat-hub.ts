import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { WebSocket, type RawData } from 'ws'
import { Counter, Gauge } from 'prom-client'
import {
  ChatCloseCodes,
  type ChatErrorCode,
  type ChatFrameRef,
  type ChatLiveEnvelope,
  type ChatMessage,
  type ChatMessageFrame,
  type ChatServerFrame,
  type ChatSessionClosedFrame,
  type ChatTypingServerFrame
} from '@platform/contracts'
import { Sequencer } from '../domain/sequencer.js'
import { parseLiveEnvelope, refOf } from '../domain/frames.js'
import type { ChatIdentity } from '../domain/identity.js'
import type { RateWindow } from '../domain/rate-window.js'
import type { SeqRange } from '../domain/seq-ranges.js'
import type { ChatStore } from './chat-store.js'
import type { LiveBus } from './live-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    chatHub: ChatHub
  }
}

/**
 * One WebSocket connection. Fixed shape and no closures or timers of its own: the hub's shared
 * listeners find it through the socket, and one heartbeat interval serves every connection.
 */
export class Connection {
  room: Room | null = null
  /** History sent: live messages may flow. */
  ready = false
  canWrite = false
  /** The last seq this connection got (history or live). */
  lastSeq = 0
  alive = true
  pending = 0
  queue: Promise<void> | null = null
  /** Anonymous connections are rate-limited on their own. */
  rate: RateWindow | null = null
  typingAt = 0
  typing = false

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly who: ChatIdentity
  ) {}
}

/** A message on its way to a room's connections, serialized once. */
interface Delivery {
  seq: number
  text: string
  origin: Connection | null
  ref: ChatFrameRef | undefined
  frame: ChatMessageFrame
}

/** The connections of one chat session on this instance. */
export class Room {
  readonly conns = new Set<Connection>()
  readonly order = new Sequencer<Delivery>()
  closed = false
  /** NATS was away: everything after `order.last` is read back, not only a gap. */
  behind = false
  gapTimer: NodeJS.Timeout | null = null
  subscribed: Promise<void> = Promise.resolve()

  constructor(readonly id: string) {}
}

export interface HubOptions {
  heartbeatMs: number
  maxBufferedBytes: number
  maxPendingFrames: number
  gapFillDelayMs: number
  shutdownGraceMs: number
  /** Epoch ms the heartbeat compares token expiry with [Date.now]; tests move it. */
  now?: () => number
}

type FrameHandler = (conn: Connection, data: RawData, isBinary: boolean) => Promise<void>

const CONN = Symbol('chat-connection')
type TaggedSocket = WebSocket & { [CONN]?: Connection }

/** Messages per read when catching up or publishing again after a NATS outage. */
const CATCH_UP_PAGE = 500

const RETRYABLE = new Set<ChatErrorCode>(['RATE_LIMITED', 'DATABASE_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'INTERNAL_ERROR'])

export const messageFrame = (m: ChatMessage): ChatMessageFrame => ({ type: 'message', ...m })

/**
 * Connections, rooms and delivery on one instance: in-order, duplicate-free fan-out of persisted
 * messages (local first, then NATS to the other instances), typing relays, heartbeats, slow-consumer
 * protection and graceful shutdown.
 */
export class ChatHub {
  readonly connections = new Set<Connection>()
  readonly rooms = new Map<string, Room>()
  draining = false
  private readonly inflight = new Set<Promise<unknown>>()
  private readonly heartbeat: NodeJS.Timeout
  private handler: FrameHandler = async () => {}
  private beforeShutdown: () => void = () => {}
  private republishTimer: NodeJS.Timeout | null = null
  readonly slowConsumers: Counter
  readonly gapFills: Counter
  // Shared by every socket of this hub (`this` is the socket): no closure per connection.
  private readonly onMessage: (this: TaggedSocket, data: RawData, isBinary: boolean) => void
  private readonly onClose: (this: TaggedSocket) => void

  constructor(
    private readonly store: ChatStore,
    private readonly bus: LiveBus,
    private readonly log: FastifyBaseLogger,
    private readonly opts: HubOptions,
    metrics: { slowConsumers: Counter; gapFills: Counter }
  ) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const hub = this
    this.onMessage = function (data, isBinary) {
      const conn = this[CONN]
      if (conn) hub.receive(conn, data, isBinary)
    }
    this.onClose = function () {
      const conn = this[CONN]
      if (conn) hub.detach(conn)
    }
    this.slowConsumers = metrics.slowConsumers
    this.gapFills = metrics.gapFills
    this.heartbeat = setInterval(this.beat, opts.heartbeatMs)
    this.heartbeat.unref()
    bus.onFrame((id, data) => this.fromBus(id, data))
    bus.onResync((republish) => void this.resync(republish))
  }

  onFrame(fn: FrameHandler): void {
    this.handler = fn
  }

  /** Runs first when shutting down (the assistant aborts its calls so their fallbacks persist in time). */
  onShutdown(fn: () => void): void {
    this.beforeShutdown = fn
  }

  // ------------------------------------------------------------------ connections

  /** Takes over a freshly upgraded socket. */
  attach(ws: WebSocket, conn: Connection | null): void {
    // @fastify/websocket's error listener closes over the request and reply; ours is shared.
    ws.removeAllListeners('error')
    ws.on('error', onSocketError)
    if (!conn) return
    ;(ws as TaggedSocket)[CONN] = conn
    this.connections.add(conn)
    ws.on('message', this.onMessage)
    ws.on('pong', onPong)
    ws.on('close', this.onClose)
  }


  private detach(conn: Connection): void {
    this.connections.delete(conn)
    this.leave(conn)
  }

  /** Queues a frame behind the connection's earlier ones, so a client's frames are handled in order. */
  receive(conn: Connection, data: RawData, isBinary: boolean): void {
    if (this.draining) {
      const message = 'This instance is restarting: reconnect and send again'
      return this.error(conn, 'SERVICE_UNAVAILABLE', message, refOf(data, isBinary), 1000)
    }
    if (conn.pending >= this.opts.maxPendingFrames) {
      const message = 'Too many frames waiting to be processed: slow down'
      return this.error(conn, 'RATE_LIMITED', message, refOf(data, isBinary), 1000)
    }
    conn.pending++
    const tail: Promise<void> = (conn.queue ?? Promise.resolve())
      .then(() => this.handler(conn, data, isBinary))
      .catch((err: unknown) => this.log.error({ err, connectionId: conn.id }, 'chat frame failed'))
      .finally(() => {
        conn.pending--
        if (conn.queue === tail) conn.queue = null
      })
    conn.queue = tail
  }

  /** Sends a serialized frame; closes a connection whose unsent buffer passed the limit (4008). */
  sendText(conn: Connection, text: string): void {
    const ws = conn.ws
    if (ws.readyState !== WebSocket.OPEN) return
    ws.send(text)
    if (ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.slowConsumers.inc()
      this.log.warn({ connectionId: conn.id, buffered: ws.bufferedAmount }, 'closing a slow consumer')
      ws.close(ChatCloseCodes.slowConsumer, 'slow consumer')
    }
  }

  send(conn: Connection, frame: ChatServerFrame): void {
    this.sendText(conn, JSON.stringify(frame))
  }

  error(conn: Connection, code: ChatErrorCode, message: string, ref?: ChatFrameRef, retryAfterMs?: number): void {
    this.send(conn, {
      type: 'error',
      code,
      message,
      retryable: RETRYABLE.has(code),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      ...(ref !== undefined ? { ref } : {})
    })
  }

  /** Tracks work that shutdown must wait for (assistant replies). */
  track<T>(work: Promise<T>): Promise<T> {
    this.inflight.add(work)
    void work.finally(() => this.inflight.delete(work)).catch(() => {})
    return work
  }

  // ------------------------------------------------------------------ rooms

  /** Puts the connection in a session's room (not ready yet) and waits until NATS carries its live frames. */
  async join(conn: Connection, chatSessionId: string): Promise<Room> {
    this.leave(conn)
    let room = this.rooms.get(chatSessionId)
    if (!room) {
      room = new Room(chatSessionId)
      this.rooms.set(chatSessionId, room)
      room.subscribed = this.bus.join(chatSessionId)
    }
    room.conns.add(conn)
    conn.room = room
    conn.ready = false
    await room.subscribed
    return room
  }

  /**
   * History was sent up to `lastSeq`: from now on live messages flow to the connection. When the room
   * already delivered past that, the difference is read back first so the connection misses nothing.
   */
  async activate(conn: Connection, room: Room, lastSeq: number): Promise<void> {
    conn.lastSeq = lastSeq
    if (!room.order.initialized) {
      this.fanOut(room, room.order.init(lastSeq))
    }
    while (room.order.last > conn.lastSeq && conn.room === room) {
      const target = room.order.last
      for (const m of await this.store.range(room.id, conn.lastSeq, target)) {
        if (m.seq > conn.lastSeq) {
          conn.lastSeq = m.seq
          this.sendText(conn, JSON.stringify(messageFrame(m)))
        }
      }
      // What Postgres no longer has (removed meanwhile) cannot be sent: move on.
      if (conn.lastSeq < target) conn.lastSeq = target
    }
    if (conn.room !== room) return
    conn.ready = true
    this.scheduleGapFill(room)
  }

  leave(conn: Connection): void {
    const room = conn.room
    if (!room) return
    conn.room = null
    conn.ready = false
    room.conns.delete(conn)
    if (room.conns.size === 0 && this.rooms.get(room.id) === room) {
      this.rooms.delete(room.id)
      if (room.gapTimer) clearTimeout(room.gapTimer)
      this.bus.leave(room.id)
    }
  }

  // ------------------------------------------------------------------ delivery

  /** A message this instance persisted: to its local connections now, to the other instances through NATS. */
  publishMessage(chatSessionId: string, message: ChatMessage, origin: Connection | null, ref?: ChatFrameRef): void {
    const frame = messageFrame(message)
    const room = this.rooms.get(chatSessionId)
    if (room) this.accept(room, { seq: message.seq, text: JSON.stringify(frame), origin, ref, frame })
    this.bus.publish(chatSessionId, frame)
  }

  relayTyping(room: Room, from: Connection, isTyping: boolean): void {
    const frame: ChatTypingServerFrame = { type: 'typing', chatSessionId: room.id, userId: from.who.id, isTyping }
    this.typingToLocal(room, frame, from.id)
    this.bus.publish(room.id, frame, from.id)
  }

  /** A session was closed (by a connection, REST or cleanup): every connection of it is told. */
  announceClosed(chatSessionId: string, closedAt: string, reason: 'user' | 'expired', origin?: Connection, ref?: ChatFrameRef): void {
    const frame: ChatSessionClosedFrame = { type: 'session_closed', chatSessionId, closedAt, reason }
    this.closedToLocal(frame, origin, ref)
    this.bus.publish(chatSessionId, frame)
  }

  private accept(room: Room, d: Delivery): void {
    this.fanOut(room, room.order.accept(d))
    this.scheduleGapFill(room)
  }

  private fanOut(room: Room, items: Delivery[]): void {
    for (const d of items) {
      let withRef: string | undefined
      for (const conn of room.conns) {
        if (!conn.ready || d.seq <= conn.lastSeq) continue
        conn.lastSeq = d.seq
        if (conn === d.origin && d.ref !== undefined) {
          withRef ??= JSON.stringify({ ...d.frame, ref: d.ref })
          this.sendText(conn, withRef)
        } else {
          this.sendText(conn, d.text)
        }
      }
    }
  }

  private typingToLocal(room: Room, frame: ChatTypingServerFrame, fromConnectionId: string | undefined): void {
    const text = JSON.stringify(frame)
    for (const conn of room.conns) if (conn.ready && conn.id !== fromConnectionId) this.sendText(conn, text)
  }

  private closedToLocal(frame: ChatSessionClosedFrame, origin?: Connection, ref?: ChatFrameRef): void {
    const room = this.rooms.get(frame.chatSessionId)
    if (!room) return
    room.closed = true
    const text = JSON.stringify(frame)
    for (const conn of room.conns) {
      this.sendText(conn, conn === origin && ref !== undefined ? JSON.stringify({ ...frame, ref }) : text)
    }
  }

  /** A live frame from NATS: checked against the contract; this instance's own echoes are ignored. */
  private fromBus(chatSessionId: string, data: Uint8Array): void {
    const env: ChatLiveEnvelope | null = parseLiveEnvelope(data)
    if (!env || env.frame.chatSessionId !== chatSessionId) {
      this.log.warn({ chatSessionId }, 'dropped a live frame that does not match the contract')
      return
    }
    if (env.origin === this.bus.instanceId) return
    const room = this.rooms.get(chatSessionId)
    if (!room) return
    const frame = env.frame
    if (frame.type === 'message') {
      this.accept(room, { seq: frame.seq, text: JSON.stringify(frame), origin: null, ref: undefined, frame })
    } else if (frame.type === 'typing') {
      this.typingToLocal(room, frame, env.connectionId)
    } else {
      this.closedToLocal(frame)
    }
  }

  /** A seq is missing: wait briefly for its live frame, then read it from Postgres. */
  private scheduleGapFill(room: Room, delay = this.opts.gapFillDelayMs): void {
    if (!room.order.initialized || !(room.order.hasGap || room.behind) || room.gapTimer) return
    room.gapTimer = setTimeout(() => {
      room.gapTimer = null
      void this.fillGap(room)
    }, delay)
  }

  private async fillGap(room: Room): Promise<void> {
    if (this.rooms.get(room.id) !== room || !(room.order.hasGap || room.behind)) return
    const behind = room.behind
    try {
      this.gapFills.inc()
      if (behind) {
        room.behind = false
        await this.readAfter(room)
      } else {
        const missing = await this.store.range(room.id, room.order.last, room.order.highest)
        for (const m of missing) this.catchUp(room, m)
        // Postgres has every seq below one that was delivered, so what is still missing does not exist.
        if (room.order.hasGap) this.fanOut(room, room.order.skipGap())
      }
    } catch (err) {
      if (behind) room.behind = true
      this.log.warn({ err, chatSessionId: room.id }, 'could not read missing messages; retrying')
      this.scheduleGapFill(room, this.opts.gapFillDelayMs * 10)
    }
  }

  /**
   * Everything Postgres has after the last seq the room delivered, page by page: after a NATS outage
   * nothing may have arrived live to reveal a gap.
   */
  private async readAfter(room: Room): Promise<void> {
    let after = room.order.last
    for (;;) {
      const page = await this.store.range(room.id, after, null, CATCH_UP_PAGE)
      for (const m of page) this.catchUp(room, m)
      const last = page.at(-1)
      if (!last || page.length < CATCH_UP_PAGE || this.rooms.get(room.id) !== room) break
      after = last.seq
    }
    // Live frames that came in meanwhile past what was read wait for their gap as usual.
    this.scheduleGapFill(room)
  }

  private catchUp(room: Room, m: ChatMessage): void {
    const frame = messageFrame(m)
    this.fanOut(room, room.order.accept({ seq: m.seq, text: JSON.stringify(frame), origin: null, ref: undefined, frame }))
  }

  /**
   * After NATS is back (and has this instance's subscriptions): every open room reads what it may have
   * missed, room after room so a reconnect does not flood the pool, and what this instance persisted
   * but NATS may not have carried is published again for the other instances.
   */
  private async resync(republish: Map<string, SeqRange>): Promise<void> {
    if (this.draining) return
    let rooms = 0
    for (const room of [...this.rooms.values()]) {
      if (!room.order.initialized || this.rooms.get(room.id) !== room) continue
      rooms++
      room.behind = true
      if (room.gapTimer) clearTimeout(room.gapTimer)
      room.gapTimer = null
      await this.fillGap(room)
    }
    const republished = await this.republish(republish)
    if (rooms > 0 || republished > 0) this.log.info({ rooms, republished }, 'chat caught up after NATS reconnected')
  }

  /** Publishes persisted messages again; a session that cannot be read now is retried later. */
  private async republish(ranges: Map<string, SeqRange>): Promise<number> {
    let sent = 0
    let failed = false
    for (const [chatSessionId, range] of ranges) {
      let after = range.after
      try {
        while (after < range.upTo) {
          const page = await this.store.range(chatSessionId, after, range.upTo, CATCH_UP_PAGE)
          for (const m of page) this.bus.publish(chatSessionId, messageFrame(m))
          sent += page.length
          const last = page.at(-1)
          if (!last || page.length < CATCH_UP_PAGE) break
          after = last.seq
        }
      } catch (err) {
        this.log.warn({ err, chatSessionId }, 'could not read messages to publish again; retrying')
        this.bus.requeue(chatSessionId, { after, upTo: range.upTo })
        failed = true
      }
    }
    if (failed && !this.republishTimer && !this.draining) {
      this.republishTimer = setTimeout(() => {
        this.republishTimer = null
        // While NATS is down the next reconnect takes them.
        if (this.bus.up) void this.republish(this.bus.takeUnsent())
      }, this.opts.gapFillDelayMs * 10)
    }
    return sent
  }

  // ------------------------------------------------------------------ heartbeat and shutdown

  /**
   * One interval for every connection: drop those that missed a pong or whose token expired, ping the rest.
   * Public so that tests beat by hand (with a long HEARTBEAT_INTERVAL_MS) instead of racing the timer.
   */
  readonly beat = (): void => {
    const now = (this.opts.now ?? Date.now)()
    for (const conn of this.connections) {
      const ws = conn.ws
      if (conn.who.expiresAt && conn.who.expiresAt <= now) {
        ws.close(ChatCloseCodes.unauthorized, 'TOKEN_EXPIRED')
      } else if (!conn.alive) {
        ws.terminate()
        this.detach(conn)
      } else {
        conn.alive = false
        ws.ping()
      }
    }
  }

  /**
   * Graceful shutdown (preClose): refuse new frames, finish the ones received (messages persisted and
   * broadcast, assistant calls cut short into persisted fallbacks), then close every socket with 1012.
   */
  async shutdown(): Promise<void> {
    this.draining = true
    clearInterval(this.heartbeat)
    this.beforeShutdown()
    const deadline = Date.now() + this.opts.shutdownGraceMs
    for (;;) {
      const work: Array<Promise<unknown>> = [...this.inflight]
      for (const c of this.connections) if (c.queue) work.push(c.queue)
      const left = deadline - Date.now()
      if (work.length === 0 || left <= 0) break
      await Promise.race([Promise.allSettled(work), sleep(left)])
    }
    const open = [...this.connections]
    for (const conn of open) conn.ws.close(ChatCloseCodes.serviceRestart, 'service restart')
    const closeBy = Date.now() + 1000
    while (open.some((c) => c.ws.readyState !== WebSocket.CLOSED) && Date.now() < closeBy) await sleep(20)
    for (const conn of open) if (conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate()
    for (const room of this.rooms.values()) if (room.gapTimer) clearTimeout(room.gapTimer)
    if (this.republishTimer) clearTimeout(this.republishTimer)
    this.rooms.clear()
    this.bus.close()
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function onPong(this: TaggedSocket) {
  const conn = this[CONN]
  if (conn) conn.alive = true
}

function onSocketError(this: WebSocket) {
  // ws closes the socket itself (e.g. 1009 for an oversized frame); nothing else to do.
}

export const chatHubPlugin = fp<HubOptions>(
  async (fastify, opts) => {
    const slowConsumers = new Counter({
      name: 'chat_slow_consumer_closes_total',
      help: 'Connections closed with 4008 because their unsent buffer passed the limit',
      registers: [fastify.metrics]
    })
    const gapFills = new Counter({
      name: 'chat_gap_fills_total',
      help: 'Times a room read missing messages back from Postgres',
      registers: [fastify.metrics]
    })
    const hub = new ChatHub(fastify.chatStore, fastify.liveBus, fastify.log, opts, { slowConsumers, gapFills })
    new Gauge({
      name: 'chat_connections',
      help: 'Open chat WebSocket connections on this instance',
      registers: [fastify.metrics],
      collect() {
        this.set(hub.connections.size)
      }
    })
    new Gauge({
      name: 'chat_rooms',
      help: 'Chat sessions with connections on this instance',
      registers: [fastify.metrics],
      collect() {
        this.set(hub.rooms.size)
      }
    })
    fastify.decorate('chatHub', hub)
  },
  { name: 'chat-hub', dependencies: ['chat-store', 'chat-live-bus', 'platform-metrics'] }
)
