import type { ChatFrameRef, ChatSendMessageFrame, ChatSessionCloseFrame, ChatTypingFrame } from '@platform/contracts'
import { contentProblem } from '../domain/content.js'
import type { Connection, Room } from '../hub/connection.js'
import { answer } from './answer.js'
import { authorOf, type ProtocolContext } from './context.js'

const CLOSED = 'This chat session is closed: start a new one with session_init'

/** The room a write frame acts on, after the checks every write shares; null when an error was sent. */
function writableRoom(ctx: ProtocolContext, conn: Connection, ref: ChatFrameRef | undefined): Room | null {
  const room = conn.room
  if (!room || !conn.ready) {
    ctx.hub.error(conn, 'NO_SESSION', 'Send session_init first: there is no chat session on this connection', ref)
    return null
  }
  if (!conn.canWrite) {
    ctx.hub.error(conn, 'FORBIDDEN', 'You may read this chat session but not write in it', ref)
    return null
  }
  if (room.closed) {
    ctx.hub.error(conn, 'SESSION_CLOSED', CLOSED, ref)
    return null
  }
  return room
}

/** Takes one message from the sender's allowance; false (and RATE_LIMITED sent) when it has none left. */
async function allowed(ctx: ProtocolContext, conn: Connection, ref: ChatFrameRef | undefined): Promise<boolean> {
  const { limiter } = ctx
  const decision = conn.who.anonymous ? limiter.takeOwn((conn.rate ??= { count: 0, resetAt: 0 })) : await limiter.take(conn.who.id)
  if (decision.allowed) return true
  const seconds = Math.ceil(decision.retryAfterMs / 1000)
  const message = `At most ${limiter.limit} messages per minute: retry in ${seconds} s`
  ctx.hub.error(conn, 'RATE_LIMITED', message, ref, decision.retryAfterMs)
  return false
}

/** `message`: checked, rate-limited, persisted, broadcast (the sender's copy with its ref), then answered. */
export async function sendMessage(ctx: ProtocolContext, conn: Connection, frame: ChatSendMessageFrame): Promise<void> {
  const { ref } = frame
  const { hub, store } = ctx
  const room = writableRoom(ctx, conn, ref)
  if (!room) return
  const problem = contentProblem(frame.content, ctx.opts.maxMessageLength)
  if (problem) return hub.error(conn, problem.code, problem.message, ref)
  if (!(await allowed(ctx, conn, ref))) return
  const author = authorOf(conn)
  const result = await store.append({ chatSessionId: room.id, sender: 'user', content: frame.content, metadata: {}, processingMs: null, author })
  if (!result.ok) {
    if (result.reason === 'not_found') return hub.error(conn, 'SESSION_NOT_FOUND', 'This chat session no longer exists', ref)
    room.closed = true
    return hub.error(conn, 'SESSION_CLOSED', CLOSED, ref)
  }
  ctx.persisted('user')
  hub.publishMessage(room.id, result.message, conn, ref)
  if (ctx.opts.assistantEnabled) void hub.track(answer(ctx, room.id, result.message, author))
}

/** `typing`: relayed to the session's other connections; a repeat of the same state at most once per interval. */
export function typing(ctx: ProtocolContext, conn: Connection, frame: ChatTypingFrame): void {
  const room = writableRoom(ctx, conn, frame.ref)
  if (!room) return
  const now = Date.now()
  if (frame.isTyping === conn.typing && now - conn.typingAt < ctx.opts.typingThrottleMs) return
  conn.typing = frame.isTyping
  conn.typingAt = now
  ctx.hub.relayTyping(room, conn, frame.isTyping)
}

/** `session_close`: closes the session for every connection in it. */
export async function sessionClose(ctx: ProtocolContext, conn: Connection, frame: ChatSessionCloseFrame): Promise<void> {
  const room = writableRoom(ctx, conn, frame.ref)
  if (!room) return
  const closed = await ctx.store.close(room.id, 'user')
  if (!closed?.closedAt) {
    room.closed = true
    return ctx.hub.error(conn, 'SESSION_CLOSED', 'This chat session is already closed', frame.ref)
  }
  ctx.hub.announceClosed(room.id, closed.closedAt, 'user', conn, frame.ref)
}
