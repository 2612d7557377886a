import { ChatCloseCodes } from '@platform/contracts'
import type { Connection } from './connection.js'

/**
 * One heartbeat over every connection: those whose token expired are closed (4401), those that missed
 * the last pong are dropped, the rest are pinged.
 */
export function heartbeat(connections: Iterable<Connection>, now: number, drop: (conn: Connection) => void): void {
  for (const conn of connections) {
    const ws = conn.ws
    if (conn.who.expiresAt && conn.who.expiresAt <= now) {
      ws.close(ChatCloseCodes.unauthorized, 'TOKEN_EXPIRED')
    } else if (!conn.alive) {
      ws.terminate()
      drop(conn)
    } else {
      conn.alive = false
      ws.ping()
    }
  }
}
