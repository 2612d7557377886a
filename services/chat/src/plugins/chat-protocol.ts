import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type {
  ChatMessage,
  ChatSendMessageFrame,
  ChatSessionCloseFrame,
  ChatSessionInitFrame,
  ChatTypingFrame
} from '@platform/contracts'
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '@platform/kit'
import { parseClientFrame } from '../domain/frames.js'
import { contentProblem } from '../domain/content.js'
import { accessTo } from '../domain/identity.js'
import type { Author } from '../domain/message.js'
import type { SessionState } from './chat-store.js'
import type { Connection, Room } from './chat-hub.js'

export interface ProtocolOptions {
  maxMessageLength: number
  maxHistoryMessages: number
  maxReplayMessages: number
  typingThrottleMs: number
  assistantEnabled: boolean
  assistantHistoryMessages: number
}

const authorOf = (conn: Connection): Author => ({
  userId: conn.who.anonymous ? null : conn.who.id,
  userType: conn.who.type,
  loginSessionId: conn.who.loginSessionId
})

/** The chat protocol: what each client frame does (issue 5, Frames). Errors are frames; none closes the socket. */
export const chatProtocolPlugin = fp<ProtocolOptions>(
  async (fastify, opts) => {
    const { chatHub: hub, chatStore: store, chatRateLimiter: limiter, assistant, log } = fastify
    const messagesTotal = new Counter({
      name: 'chat_messages_total',
      help: 'Chat messages persisted by this instance, by sender',
      labelNames: ['sender'] as const,
      registers: [fastify.metrics]
    })

    async function sessionInit(conn: Connection, frame: ChatSessionInitFrame): Promise<void> {
      const { ref } = frame
      let state: SessionState
      let canWrite = true
      if (!frame.chatSessionId) {
        if (frame.lastMessageId) {
          return hub.error(conn, 'INVALID_FRAME', 'lastMessageId needs the chatSessionId it belongs to', ref)
        }
        state = await store.createSession(authorOf(conn))
      } else {
        const found = await store.sessionState(frame.chatSessionId)
        const access = found ? accessTo(found, conn.who) : 'none'
        // Someone else's session looks exactly like a missing one: existence is never leaked.
        if (!found || access === 'none') {
          return hub.error(conn, 'SESSION_NOT_FOUND', `No chat session ${frame.chatSessionId}: it does not exist or is not yours`, ref)
        }
        state = found
        canWrite = access === 'write'
      }
      const room = await hub.join(conn, state.id)
      try {
        await deliverHistory(conn, frame, state, room, canWrite)
      } catch (err) {
        hub.leave(conn)
        throw err
      }
    }

    async function deliverHistory(conn: Connection, frame: ChatSessionInitFrame, state: SessionState, room: Room, canWrite: boolean) {
      const { ref } = frame
      conn.canWrite = canWrite
      if (state.status === 'closed') room.closed = true

      // Read after joining: anything committed later reaches this connection live.
      let history: ChatMessage[] | null = null
      let lastSeq = 0
      if (frame.lastMessageId) {
        const replay = await store.replay(state.id, frame.lastMessageId, opts.maxReplayMessages)
        if (replay) {
          history = replay.messages
          lastSeq = replay.messages.at(-1)?.seq ?? replay.anchorSeq
        }
      }
      const recovered = history !== null
      if (!history) {
        history = await store.latest(state.id, opts.maxHistoryMessages)
        lastSeq = history.at(-1)?.seq ?? 0
      }
      if (conn.room !== room) return
      hub.send(conn, {
        type: 'session',
        ...(ref !== undefined ? { ref } : {}),
        chatSessionId: state.id,
        status: room.closed ? 'closed' : 'active',
        history,
        recovered,
        canWrite
      })
      await hub.activate(conn, room, lastSeq)
    }

    /** The room a write frame acts on, after the checks every write shares; null when an error was sent. */
    function writableRoom(conn: Connection, ref: ChatSendMessageFrame['ref']) {
      const room = conn.room
      if (!room || !conn.ready) {
        hub.error(conn, 'NO_SESSION', 'Send session_init first: there is no chat session on this connection', ref)
        return null
      }
      if (!conn.canWrite) {
        hub.error(conn, 'FORBIDDEN', 'You may read this chat session but not write in it', ref)
        return null
      }
      if (room.closed) {
        hub.error(conn, 'SESSION_CLOSED', 'This chat session is closed: start a new one with session_init', ref)
        return null
      }
      return room
    }

    async function message(conn: Connection, frame: ChatSendMessageFrame): Promise<void> {
      const { ref } = frame
      const room = writableRoom(conn, ref)
      if (!room) return
      const problem = contentProblem(frame.content, opts.maxMessageLength)
      if (problem) return hub.error(conn, problem.code, problem.message, ref)
      const decision = conn.who.anonymous
        ? limiter.takeOwn((conn.rate ??= { count: 0, resetAt: 0 }))
        : await limiter.take(conn.who.id)
      if (!decision.allowed) {
        const seconds = Math.ceil(decision.retryAfterMs / 1000)
        return hub.error(
          conn,
          'RATE_LIMITED',
          `At most ${limiter.limit} messages per minute: retry in ${seconds} s`,
          ref,
          decision.retryAfterMs
        )
      }
      const author = authorOf(conn)
      const result = await store.append({
        chatSessionId: room.id,
        sender: 'user',
        content: frame.content,
        metadata: {},
        processingMs: null,
        author
      })
      if (!result.ok) {
        if (result.reason === 'not_found') return hub.error(conn, 'SESSION_NOT_FOUND', 'This chat session no longer exists', ref)
        room.closed = true
        return hub.error(conn, 'SESSION_CLOSED', 'This chat session is closed: start a new one with session_init', ref)
      }
      messagesTotal.inc({ sender: 'user' })
      hub.publishMessage(room.id, result.message, conn, ref)
      if (opts.assistantEnabled) void hub.track(answer(room.id, result.message, author))
    }

    /** The assistant's reply to one user message, persisted and broadcast like any message. */
    async function answer(chatSessionId: string, question: ChatMessage, author: Author): Promise<void> {
      try {
        const history = assistant.needsHistory ? await store.latest(chatSessionId, opts.assistantHistoryMessages) : []
        const reply = await assistant.reply({ chatSessionId, content: question.content, history })
        const result = await store.append({
          chatSessionId,
          sender: 'assistant',
          content: reply.content,
          metadata: { ...reply.metadata, replyTo: question.id },
          processingMs: reply.processingMs,
          author
        })
        if (!result.ok) return // closed meanwhile: nobody is waiting for the answer
        messagesTotal.inc({ sender: 'assistant' })
        hub.publishMessage(chatSessionId, result.message, null)
      } catch (err) {
        log.warn({ err, chatSessionId, messageId: question.id }, 'could not store the assistant reply')
      }
    }

    function typing(conn: Connection, frame: ChatTypingFrame): void {
      const room = writableRoom(conn, frame.ref)
      if (!room) return
      const now = Date.now()
      // A change always goes through; repeating the same state is relayed at most once per interval.
      if (frame.isTyping === conn.typing && now - conn.typingAt < opts.typingThrottleMs) return
      conn.typing = frame.isTyping
      conn.typingAt = now
      hub.relayTyping(room, conn, frame.isTyping)
    }

    async function sessionClose(conn: Connection, frame: ChatSessionCloseFrame): Promise<void> {
      const room = writableRoom(conn, frame.ref)
      if (!room) return
      const closed = await store.close(room.id, 'user')
      if (!closed?.closedAt) {
        room.closed = true
        return hub.error(conn, 'SESSION_CLOSED', 'This chat session is already closed', frame.ref)
      }
      hub.announceClosed(room.id, closed.closedAt, 'user', conn, frame.ref)
    }

    hub.onFrame(async (conn, data, isBinary) => {
      const parsed = parseClientFrame(data, isBinary)
      if (!parsed.ok) return hub.error(conn, parsed.code, parsed.message, parsed.ref)
      const frame = parsed.frame
      try {
        if (frame.type === 'session_init') await sessionInit(conn, frame)
        else if (frame.type === 'message') await message(conn, frame)
        else if (frame.type === 'typing') typing(conn, frame)
        else await sessionClose(conn, frame)
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          log.warn({ err, connectionId: conn.id }, 'database unavailable')
          return hub.error(
            conn,
            'DATABASE_UNAVAILABLE',
            'Chat storage is unavailable; nothing was stored: send again after retryAfterMs',
            frame.ref,
            DATABASE_RETRY_AFTER_SECONDS * 1000
          )
        }
        log.error({ err, connectionId: conn.id, type: frame.type }, 'chat frame failed')
        hub.error(conn, 'INTERNAL_ERROR', 'Something went wrong on our side; try again', frame.ref)
      }
    })
    hub.onShutdown(() => assistant.abortAll())
  },
  { name: 'chat-protocol', dependencies: ['chat-hub', 'chat-store', 'chat-rate-limiter', 'chat-assistant'] }
)
