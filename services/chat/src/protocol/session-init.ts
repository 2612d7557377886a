import type { ChatMessage, ChatSessionInitFrame } from '@platform/contracts'
import { accessTo } from '../domain/identity.js'
import type { Connection, Room } from '../hub/connection.js'
import type { SessionState } from '../store/chat-store.js'
import { authorOf, type ProtocolContext } from './context.js'

/** `session_init`: starts a session or resumes one, sends its history, then lets live messages flow. */
export async function sessionInit(ctx: ProtocolContext, conn: Connection, frame: ChatSessionInitFrame): Promise<void> {
  const opened = await openSession(ctx, conn, frame)
  if (!opened) return
  const room = await ctx.hub.join(conn, opened.state.id)
  try {
    await deliverHistory(ctx, conn, frame, opened, room)
  } catch (err) {
    ctx.hub.leave(conn)
    throw err
  }
}

interface Opened {
  state: SessionState
  canWrite: boolean
}

/** The session the frame starts or resumes and whether the connection may write in it; null when an error was sent. */
async function openSession(ctx: ProtocolContext, conn: Connection, frame: ChatSessionInitFrame): Promise<Opened | null> {
  const { hub, store } = ctx
  if (!frame.chatSessionId) {
    if (frame.lastMessageId) {
      hub.error(conn, 'INVALID_FRAME', 'lastMessageId needs the chatSessionId it belongs to', frame.ref)
      return null
    }
    return { state: await store.createSession(authorOf(conn)), canWrite: true }
  }
  const found = await store.sessionState(frame.chatSessionId)
  const access = found ? accessTo(found, conn.who) : 'none'
  // Someone else's session looks exactly like a missing one: existence is never leaked.
  if (!found || access === 'none') {
    hub.error(conn, 'SESSION_NOT_FOUND', `No chat session ${frame.chatSessionId}: it does not exist or is not yours`, frame.ref)
    return null
  }
  return { state: found, canWrite: access === 'write' }
}

async function deliverHistory(ctx: ProtocolContext, conn: Connection, frame: ChatSessionInitFrame, opened: Opened, room: Room): Promise<void> {
  const { state, canWrite } = opened
  conn.canWrite = canWrite
  if (state.status === 'closed') room.closed = true
  // Read after joining: anything committed later reaches this connection live.
  const { history, lastSeq, recovered } = await readHistory(ctx, state.id, frame.lastMessageId)
  if (conn.room !== room) return
  ctx.hub.send(conn, {
    type: 'session',
    ...(frame.ref !== undefined ? { ref: frame.ref } : {}),
    chatSessionId: state.id,
    status: room.closed ? 'closed' : 'active',
    history,
    recovered,
    canWrite
  })
  await ctx.hub.activate(conn, room, lastSeq)
}

/** What came after `lastMessageId` when it can be replayed (recovered), else the latest page. */
async function readHistory(
  ctx: ProtocolContext,
  chatSessionId: string,
  lastMessageId: string | undefined
): Promise<{ history: ChatMessage[]; lastSeq: number; recovered: boolean }> {
  if (lastMessageId) {
    const replay = await ctx.store.replay(chatSessionId, lastMessageId, ctx.opts.maxReplayMessages)
    if (replay) return { history: replay.messages, lastSeq: replay.messages.at(-1)?.seq ?? replay.anchorSeq, recovered: true }
  }
  const history = await ctx.store.latest(chatSessionId, ctx.opts.maxHistoryMessages)
  return { history, lastSeq: history.at(-1)?.seq ?? 0, recovered: false }
}
