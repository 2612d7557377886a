import type { FastifyBaseLogger } from 'fastify'
import type { ChatFrameRef, ChatMessage, ChatSessionClosedFrame, ChatTypingServerFrame } from '@platform/contracts'
import { parseLiveEnvelope } from '../domain/frames.js'
import type { LiveBus } from '../plugins/live-bus.js'
import { delivery, messageFrame, type Connection, type Room } from './connection.js'
import { closedToLocal, typingToLocal } from './fan-out.js'
import type { GapFiller } from './gap-fill.js'
import type { SendText } from './sender.js'

export interface DeliveryDeps {
  rooms: ReadonlyMap<string, Room>
  bus: Pick<LiveBus, 'publish' | 'instanceId'>
  send: SendText
  gaps: GapFiller
  log: Pick<FastifyBaseLogger, 'warn'>
}

/** Live frames: to this instance's connections first, then through NATS to the other instances, and back. */
export class LiveDelivery {
  constructor(private readonly deps: DeliveryDeps) {}

  /** A message this instance persisted: to its local connections now, to the other instances through NATS. */
  publishMessage(chatSessionId: string, message: ChatMessage, origin: Connection | null, ref?: ChatFrameRef): void {
    const frame = messageFrame(message)
    const room = this.deps.rooms.get(chatSessionId)
    if (room) this.deps.gaps.accept(room, delivery(frame, origin, ref))
    this.deps.bus.publish(chatSessionId, frame)
  }

  relayTyping(room: Room, from: Connection, isTyping: boolean): void {
    const frame: ChatTypingServerFrame = { type: 'typing', chatSessionId: room.id, userId: from.who.id, isTyping }
    typingToLocal(this.deps.send, room, frame, from.id)
    this.deps.bus.publish(room.id, frame, from.id)
  }

  /** A session was closed (by a connection, REST or cleanup): every connection of it is told. */
  announceClosed(chatSessionId: string, closedAt: string, reason: 'user' | 'expired', origin?: Connection, ref?: ChatFrameRef): void {
    const frame: ChatSessionClosedFrame = { type: 'session_closed', chatSessionId, closedAt, reason }
    const room = this.deps.rooms.get(chatSessionId)
    if (room) closedToLocal(this.deps.send, room, frame, origin, ref)
    this.deps.bus.publish(chatSessionId, frame)
  }

  /** A live frame from NATS: checked against the contract; this instance's own echoes are ignored. */
  fromBus(chatSessionId: string, data: Uint8Array): void {
    const env = parseLiveEnvelope(data)
    if (!env || env.frame.chatSessionId !== chatSessionId) {
      this.deps.log.warn({ chatSessionId }, 'dropped a live frame that does not match the contract')
      return
    }
    if (env.origin === this.deps.bus.instanceId) return
    const room = this.deps.rooms.get(chatSessionId)
    if (!room) return
    const frame = env.frame
    if (frame.type === 'message') this.deps.gaps.accept(room, delivery(frame))
    else if (frame.type === 'typing') typingToLocal(this.deps.send, room, frame, env.connectionId)
    else closedToLocal(this.deps.send, room, frame)
  }
}
