import type { ChatFrameRef, ChatSessionClosedFrame, ChatTypingServerFrame } from '@platform/contracts'
import type { Connection, Delivery, Room } from './connection.js'
import type { SendText } from './sender.js'

/** Sends deliverable messages, in order, to the room's ready connections that do not have them yet. */
export function fanOut(send: SendText, room: Room, items: Delivery[]): void {
  for (const d of items) {
    let withRef: string | undefined
    for (const conn of room.conns) {
      if (!conn.ready || d.seq <= conn.lastSeq) continue
      conn.lastSeq = d.seq
      if (conn === d.origin && d.ref !== undefined) {
        withRef ??= JSON.stringify({ ...d.frame, ref: d.ref })
        send(conn, withRef)
      } else {
        send(conn, d.text)
      }
    }
  }
}

/** A typing relay to the room's ready connections, except the one typing. */
export function typingToLocal(send: SendText, room: Room, frame: ChatTypingServerFrame, fromConnectionId: string | undefined): void {
  const text = JSON.stringify(frame)
  for (const conn of room.conns) if (conn.ready && conn.id !== fromConnectionId) send(conn, text)
}

/** The room is closed: every connection is told, the one that closed it with its `ref`. */
export function closedToLocal(send: SendText, room: Room, frame: ChatSessionClosedFrame, origin?: Connection, ref?: ChatFrameRef): void {
  room.closed = true
  const text = JSON.stringify(frame)
  for (const conn of room.conns) {
    send(conn, conn === origin && ref !== undefined ? JSON.stringify({ ...frame, ref }) : text)
  }
}
