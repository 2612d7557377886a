import { WebSocket } from 'ws'
import { ChatCloseCodes } from '@platform/contracts'
import type { Connection } from './connection.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Waits until the frames being handled and the tracked work are done, or until the grace period is over. */
export async function settle(connections: Iterable<Connection>, inflight: Iterable<Promise<unknown>>, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs
  for (;;) {
    const work: Array<Promise<unknown>> = [...inflight]
    for (const c of connections) if (c.queue) work.push(c.queue)
    const left = deadline - Date.now()
    if (work.length === 0 || left <= 0) return
    await Promise.race([Promise.allSettled(work), sleep(left)])
  }
}

/** Closes every socket with 1012 and gives the close handshakes a second; the sockets still open then are cut. */
export async function closeAll(connections: Iterable<Connection>): Promise<void> {
  const open = [...connections]
  for (const conn of open) conn.ws.close(ChatCloseCodes.serviceRestart, 'service restart')
  const closeBy = Date.now() + 1000
  while (open.some((c) => c.ws.readyState !== WebSocket.CLOSED) && Date.now() < closeBy) await sleep(20)
  for (const conn of open) if (conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate()
}
