import type { WebSocket } from 'ws'
import type { ChatFrameRef, ChatMessage, ChatMessageFrame } from '@platform/contracts'
import { Sequencer } from '../domain/sequencer.js'
import type { ChatIdentity } from '../domain/identity.js'
import type { RateWindow } from '../domain/rate-window.js'

/** What the hub does with a connection's socket (a `ws` WebSocket; a fake one in unit tests). */
export type ChatSocket = Pick<WebSocket, 'readyState' | 'bufferedAmount' | 'send' | 'close' | 'terminate' | 'ping'>

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
    readonly ws: ChatSocket,
    readonly who: ChatIdentity
  ) {}
}

/** A message on its way to a room's connections, serialized once. */
export interface Delivery {
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

export const messageFrame = (m: ChatMessage): ChatMessageFrame => ({ type: 'message', ...m })

/** A message frame ready to fan out; `origin` gets it with its `ref`. */
export function delivery(frame: ChatMessageFrame, origin: Connection | null = null, ref?: ChatFrameRef): Delivery {
  return { seq: frame.seq, text: JSON.stringify(frame), origin, ref, frame }
}
