import type { ChatClientFrame } from '@platform/contracts'
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '@platform/kit'
import { parseClientFrame } from '../domain/frames.js'
import type { Connection } from '../hub/connection.js'
import type { FrameHandler } from '../hub/intake.js'
import type { ProtocolContext, ProtocolDeps, ProtocolOptions } from './context.js'
import { sessionInit } from './session-init.js'
import { sendMessage, sessionClose, typing } from './writes.js'

/** The chat protocol: what each client frame does. Errors are frames; none closes the socket. */
export function createChatProtocol(deps: ProtocolDeps, opts: ProtocolOptions): { handle: FrameHandler } {
  const ctx: ProtocolContext = { ...deps, opts }
  return {
    async handle(conn, data, isBinary) {
      const parsed = parseClientFrame(data, isBinary)
      if (!parsed.ok) return ctx.hub.error(conn, parsed.code, parsed.message, parsed.ref)
      try {
        await dispatch(ctx, conn, parsed.frame)
      } catch (err) {
        failed(ctx, conn, parsed.frame, err)
      }
    }
  }
}

function dispatch(ctx: ProtocolContext, conn: Connection, frame: ChatClientFrame): Promise<void> | void {
  switch (frame.type) {
    case 'session_init':
      return sessionInit(ctx, conn, frame)
    case 'message':
      return sendMessage(ctx, conn, frame)
    case 'typing':
      return typing(ctx, conn, frame)
    case 'session_close':
      return sessionClose(ctx, conn, frame)
  }
}

/** A frame whose handling threw: Postgres away is the client's to retry; anything else is ours. */
function failed(ctx: ProtocolContext, conn: Connection, frame: ChatClientFrame, err: unknown): void {
  if (isDatabaseUnavailable(err)) {
    ctx.log.warn({ err, connectionId: conn.id }, 'database unavailable')
    const message = 'Chat storage is unavailable; nothing was stored: send again after retryAfterMs'
    return ctx.hub.error(conn, 'DATABASE_UNAVAILABLE', message, frame.ref, DATABASE_RETRY_AFTER_SECONDS * 1000)
  }
  ctx.log.error({ err, connectionId: conn.id, type: frame.type }, 'chat frame failed')
  ctx.hub.error(conn, 'INTERNAL_ERROR', 'Something went wrong on our side; try again', frame.ref)
}
