import type { FastifyBaseLogger } from 'fastify'
import type { ChatSender } from '@platform/contracts'
import type { Author } from '../domain/message.js'
import type { ChatHub } from '../hub/chat-hub.js'
import type { Connection } from '../hub/connection.js'
import type { ChatStore } from '../store/chat-store.js'
import type { Assistant } from '../plugins/assistant.js'
import type { ChatRateLimiter } from '../plugins/rate-limiter.js'

export interface ProtocolOptions {
  maxMessageLength: number
  maxHistoryMessages: number
  maxReplayMessages: number
  typingThrottleMs: number
  assistantEnabled: boolean
  assistantHistoryMessages: number
}

/** What the frame handlers act on. */
export interface ProtocolDeps {
  hub: ChatHub
  store: ChatStore
  limiter: Pick<ChatRateLimiter, 'take' | 'takeOwn' | 'limit'>
  assistant: Pick<Assistant, 'needsHistory' | 'reply'>
  log: Pick<FastifyBaseLogger, 'warn' | 'error'>
  /** Counts a message this instance persisted. */
  persisted: (sender: ChatSender) => void
}

export interface ProtocolContext extends ProtocolDeps {
  opts: ProtocolOptions
}

export const authorOf = (conn: Connection): Author => ({
  userId: conn.who.anonymous ? null : conn.who.id,
  userType: conn.who.type,
  loginSessionId: conn.who.loginSessionId
})
