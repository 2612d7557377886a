import type { RawData, WebSocket } from 'ws'
import type { Connection } from './connection.js'

const CONN = Symbol('chat-connection')
type TaggedSocket = WebSocket & { [CONN]?: Connection }

export interface SocketEvents {
  receive(conn: Connection, data: RawData, isBinary: boolean): void
  detach(conn: Connection): void
}

/** The socket listeners, shared by every socket of a hub (`this` is the socket): no closure per connection. */
export class SocketListeners {
  private readonly onMessage: (this: TaggedSocket, data: RawData, isBinary: boolean) => void
  private readonly onClose: (this: TaggedSocket) => void

  constructor(events: SocketEvents) {
    this.onMessage = function (data, isBinary) {
      const conn = this[CONN]
      if (conn) events.receive(conn, data, isBinary)
    }
    this.onClose = function () {
      const conn = this[CONN]
      if (conn) events.detach(conn)
    }
  }

  /** Takes over a freshly upgraded socket; one without a connection (refused) only gets the error listener. */
  attach(ws: WebSocket, conn: Connection | null): void {
    // @fastify/websocket's error listener closes over the request and reply; ours is shared.
    ws.removeAllListeners('error')
    ws.on('error', onSocketError)
    if (!conn) return
    Object.assign(ws, { [CONN]: conn })
    ws.on('message', this.onMessage)
    ws.on('pong', onPong)
    ws.on('close', this.onClose)
  }
}

function onPong(this: TaggedSocket) {
  const conn = this[CONN]
  if (conn) conn.alive = true
}

function onSocketError(this: WebSocket) {
  // ws closes the socket itself (e.g. 1009 for an oversized frame); nothing else to do.
}
