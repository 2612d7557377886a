import type { FastifyBaseLogger } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { ChatErrorCode, ChatFrameRef, ChatMessage, ChatServerFrame } from '@platform/contracts'
import type { ChatStore } from '../store/chat-store.js'
import type { LiveBus } from '../plugins/live-bus.js'
import type { Connection, Room } from './connection.js'
import { LiveDelivery } from './delivery.js'
import { GapFiller } from './gap-fill.js'
import { heartbeat } from './heartbeat.js'
import { FrameIntake, type FrameHandler } from './intake.js'
import { Resync } from './resync.js'
import { RoomMembership } from './rooms.js'
import { FrameSender, type Tally } from './sender.js'
import { closeAll, settle } from './shutdown.js'
import { SocketListeners } from './sockets.js'

export interface HubOptions {
  heartbeatMs: number
  maxBufferedBytes: number
  maxPendingFrames: number
  gapFillDelayMs: number
  shutdownGraceMs: number
  /** Epoch ms the heartbeat compares token expiry with [Date.now]; tests move it. */
  now?: () => number
}

export interface HubDeps {
  store: Pick<ChatStore, 'range'>
  bus: LiveBus
  log: Pick<FastifyBaseLogger, 'warn' | 'info' | 'error'>
  metrics: { slowConsumers: Tally; gapFills: Tally }
}

/**
 * Connections, rooms and delivery on one instance: in-order, duplicate-free fan-out of persisted
 * messages (local first, then NATS to the other instances), typing relays, heartbeats, slow-consumer
 * protection and graceful shutdown. Each of those is a part of its own; this is what the protocol,
 * the routes and the tests hold.
 */
export class ChatHub {
  readonly connections = new Set<Connection>()
  readonly rooms = new Map<string, Room>()
  draining = false
  private readonly inflight = new Set<Promise<unknown>>()
  private readonly heartbeatTimer: NodeJS.Timeout
  private beforeShutdown: () => void = () => {}
  private readonly sender: FrameSender
  private readonly intake: FrameIntake
  private readonly sockets: SocketListeners
  private readonly gaps: GapFiller
  private readonly membership: RoomMembership
  private readonly live: LiveDelivery
  private readonly resync: Resync

  constructor(
    private readonly deps: HubDeps,
    private readonly opts: HubOptions
  ) {
    const { store, bus, log, metrics } = deps
    const rooms = this.rooms
    this.sender = new FrameSender(log, opts.maxBufferedBytes, metrics.slowConsumers)
    const send = this.sender.sendText
    this.intake = new FrameIntake(this.sender, log, opts.maxPendingFrames, () => this.draining)
    this.sockets = new SocketListeners({ receive: (c, data, isBinary) => this.intake.receive(c, data, isBinary), detach: (c) => this.detach(c) })
    this.gaps = new GapFiller({ rooms, store, send, log, gapFills: metrics.gapFills, delayMs: opts.gapFillDelayMs })
    this.membership = new RoomMembership({ rooms, bus, store, send, gaps: this.gaps })
    this.live = new LiveDelivery({ rooms, bus, send, gaps: this.gaps, log })
    const retryMs = opts.gapFillDelayMs * 10
    this.resync = new Resync({ rooms, gaps: this.gaps, store, bus, log, draining: () => this.draining, retryMs })
    this.heartbeatTimer = setInterval(this.beat, opts.heartbeatMs)
    this.heartbeatTimer.unref()
    bus.onFrame((id, data) => this.live.fromBus(id, data))
    bus.onResync((republish) => void this.resync.run(republish))
  }

  onFrame(fn: FrameHandler): void {
    this.intake.onFrame(fn)
  }

  /** Runs first when shutting down (the assistant aborts its calls so their fallbacks persist in time). */
  onShutdown(fn: () => void): void {
    this.beforeShutdown = fn
  }

  /** Takes over a freshly upgraded socket; `null` for one that is refused and about to be closed. */
  attach(ws: WebSocket, conn: Connection | null): void {
    this.sockets.attach(ws, conn)
    if (conn) this.connections.add(conn)
  }

  /** Queues a frame behind the connection's earlier ones, so a client's frames are handled in order. */
  receive(conn: Connection, data: RawData, isBinary: boolean): void {
    this.intake.receive(conn, data, isBinary)
  }

  send(conn: Connection, frame: ChatServerFrame): void {
    this.sender.send(conn, frame)
  }

  error(conn: Connection, code: ChatErrorCode, message: string, ref?: ChatFrameRef, retryAfterMs?: number): void {
    this.sender.error(conn, code, message, ref, retryAfterMs)
  }

  /** Tracks work that shutdown must wait for (assistant replies); the caller handles its outcome. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inflight.add(work)
    const forget = () => this.inflight.delete(work)
    void work.then(forget, forget)
    return work
  }

  /** Puts the connection in a session's room (not ready yet) and waits until NATS carries its live frames. */
  join(conn: Connection, chatSessionId: string): Promise<Room> {
    return this.membership.join(conn, chatSessionId)
  }

  /** History was sent up to `lastSeq`: live messages flow from there on, nothing missed in between. */
  activate(conn: Connection, room: Room, lastSeq: number): Promise<void> {
    return this.membership.activate(conn, room, lastSeq)
  }

  leave(conn: Connection): void {
    this.membership.leave(conn)
  }

  /** A message this instance persisted: to its local connections now, to the other instances through NATS. */
  publishMessage(chatSessionId: string, message: ChatMessage, origin: Connection | null, ref?: ChatFrameRef): void {
    this.live.publishMessage(chatSessionId, message, origin, ref)
  }

  relayTyping(room: Room, from: Connection, isTyping: boolean): void {
    this.live.relayTyping(room, from, isTyping)
  }

  /** A session was closed (by a connection, REST or cleanup): every connection of it is told. */
  announceClosed(chatSessionId: string, closedAt: string, reason: 'user' | 'expired', origin?: Connection, ref?: ChatFrameRef): void {
    this.live.announceClosed(chatSessionId, closedAt, reason, origin, ref)
  }

  /**
   * One interval for every connection: drop those that missed a pong or whose token expired, ping the rest.
   * Public so that tests beat by hand (with a long HEARTBEAT_INTERVAL_MS) instead of racing the timer.
   */
  readonly beat = (): void => {
    heartbeat(this.connections, (this.opts.now ?? Date.now)(), (conn) => this.detach(conn))
  }

  /**
   * Graceful shutdown (preClose): refuse new frames, finish the ones received (messages persisted and
   * broadcast, assistant calls cut short into persisted fallbacks), then close every socket with 1012.
   */
  async shutdown(): Promise<void> {
    this.draining = true
    clearInterval(this.heartbeatTimer)
    this.beforeShutdown()
    await settle(this.connections, this.inflight, this.opts.shutdownGraceMs)
    await closeAll(this.connections)
    for (const room of this.rooms.values()) this.gaps.cancel(room)
    this.resync.stop()
    this.rooms.clear()
    this.deps.bus.close()
  }

  private detach(conn: Connection): void {
    this.connections.delete(conn)
    this.membership.leave(conn)
  }
}
