import type { ChatStore } from '../store/chat-store.js'
import type { LiveBus } from '../plugins/live-bus.js'
import { messageFrame, Room, type Connection } from './connection.js'
import { fanOut } from './fan-out.js'
import type { GapFiller } from './gap-fill.js'
import type { SendText } from './sender.js'

export interface RoomsDeps {
  rooms: Map<string, Room>
  bus: Pick<LiveBus, 'join' | 'leave'>
  store: Pick<ChatStore, 'range'>
  send: SendText
  gaps: GapFiller
}

/** Which connection is in which session's room on this instance; a joining connection is brought up to date. */
export class RoomMembership {
  constructor(private readonly deps: RoomsDeps) {}

  /** Puts the connection in a session's room (not ready yet) and waits until NATS carries its live frames. */
  async join(conn: Connection, chatSessionId: string): Promise<Room> {
    this.leave(conn)
    const { rooms, bus } = this.deps
    let room = rooms.get(chatSessionId)
    if (!room) {
      room = new Room(chatSessionId)
      rooms.set(chatSessionId, room)
      room.subscribed = bus.join(chatSessionId)
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
    const { store, send, gaps } = this.deps
    conn.lastSeq = lastSeq
    if (!room.order.initialized) fanOut(send, room, room.order.init(lastSeq))
    while (room.order.last > conn.lastSeq && conn.room === room) {
      const target = room.order.last
      for (const m of await store.range(room.id, conn.lastSeq, target)) {
        if (m.seq > conn.lastSeq) {
          conn.lastSeq = m.seq
          send(conn, JSON.stringify(messageFrame(m)))
        }
      }
      // What Postgres no longer has (removed meanwhile) cannot be sent: move on.
      if (conn.lastSeq < target) conn.lastSeq = target
    }
    if (conn.room !== room) return
    conn.ready = true
    gaps.schedule(room)
  }

  leave(conn: Connection): void {
    const room = conn.room
    if (!room) return
    conn.room = null
    conn.ready = false
    room.conns.delete(conn)
    const { rooms, bus, gaps } = this.deps
    if (room.conns.size === 0 && rooms.get(room.id) === room) {
      rooms.delete(room.id)
      gaps.cancel(room)
      bus.leave(room.id)
    }
  }
}
