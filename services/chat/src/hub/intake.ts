import type { FastifyBaseLogger } from 'fastify'
import type { RawData } from 'ws'
import { refOf } from '../domain/frames.js'
import type { Connection } from './connection.js'
import type { FrameSender } from './sender.js'

export type FrameHandler = (conn: Connection, data: RawData, isBinary: boolean) => Promise<void>

/** Incoming frames: one queue per connection, so a client's frames are handled in order, and a bound on it. */
export class FrameIntake {
  private handler: FrameHandler = async () => {}

  constructor(
    private readonly sender: FrameSender,
    private readonly log: Pick<FastifyBaseLogger, 'error'>,
    private readonly maxPendingFrames: number,
    private readonly draining: () => boolean
  ) {}

  onFrame(fn: FrameHandler): void {
    this.handler = fn
  }

  /** Queues a frame behind the connection's earlier ones; refused while draining or when too many wait. */
  receive(conn: Connection, data: RawData, isBinary: boolean): void {
    if (this.draining()) {
      const message = 'This instance is restarting: reconnect and send again'
      return this.sender.error(conn, 'SERVICE_UNAVAILABLE', message, refOf(data, isBinary), 1000)
    }
    if (conn.pending >= this.maxPendingFrames) {
      const message = 'Too many frames waiting to be processed: slow down'
      return this.sender.error(conn, 'RATE_LIMITED', message, refOf(data, isBinary), 1000)
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
}
