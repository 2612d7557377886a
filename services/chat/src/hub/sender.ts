import { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { ChatCloseCodes, type ChatErrorCode, type ChatFrameRef, type ChatServerFrame } from '@platform/contracts'
import type { Connection } from './connection.js'

const RETRYABLE = new Set<ChatErrorCode>(['RATE_LIMITED', 'DATABASE_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'INTERNAL_ERROR'])

/** A counter the hub increments (a prom-client Counter in the service). */
export interface Tally {
  inc(): void
}

export type SendText = (conn: Connection, text: string) => void

/** Outgoing frames with slow-consumer protection: a connection that does not read is closed, not buffered for. */
export class FrameSender {
  constructor(
    private readonly log: Pick<FastifyBaseLogger, 'warn'>,
    private readonly maxBufferedBytes: number,
    private readonly slowConsumers: Tally
  ) {}

  /** Sends a serialized frame; closes a connection whose unsent buffer passed the limit (4008). */
  readonly sendText: SendText = (conn, text) => {
    const ws = conn.ws
    if (ws.readyState !== WebSocket.OPEN) return
    ws.send(text)
    if (ws.bufferedAmount > this.maxBufferedBytes) {
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
}
