import type pg from 'pg'
import type {
  ChatCleanupReply,
  ChatMessage,
  ChatSession as ChatSessionDto,
  ChatSessionStatus,
  ChatUserType,
  CleanupKindStats
} from '@platform/contracts'
import type { PrismaClient } from '../generated/prisma/client.js'
import type { AppendResult, Author, NewMessage } from '../domain/message.js'

/** What the WebSocket side needs to know about a session. */
export interface SessionState {
  id: string
  userId: string | null
  userType: ChatUserType
  status: ChatSessionStatus
  lastSeq: number
}

export interface ChatStore {
  createSession(author: Author): Promise<SessionState>
  sessionState(id: string): Promise<SessionState | null>
  /**
   * The latest `limit` messages, oldest first. Every seq below the last one returned is committed too
   * (seqs are given under the session's row lock), so the reader knows exactly where live delivery starts.
   */
  latest(sessionId: string, limit: number): Promise<ChatMessage[]>
  /**
   * Every message after `afterId`, in order, with the anchor's seq; null when afterId is not a message of
   * the session or more than `max` follow it.
   */
  replay(sessionId: string, afterId: string, max: number): Promise<{ messages: ChatMessage[]; anchorSeq: number } | null>
  /**
   * Messages with afterSeq < seq ≤ upToSeq (no upper bound when null), in order, the first `limit` of
   * them when given: what a receiving instance missed.
   */
  range(sessionId: string, afterSeq: number, upToSeq?: number | null, limit?: number): Promise<ChatMessage[]>
  /**
   * Persists a message with its message.created event (one statement, shared with the messages that
   * arrive at the same time); refused when the session is closed or expired.
   */
  append(message: NewMessage): Promise<AppendResult>
  /** Closes an active session (with its event); null when it was not active. */
  close(id: string, reason: 'user' | 'expired'): Promise<ChatSessionDto | null>
  find(id: string): Promise<ChatSessionDto | null>
  list(userId: string, limit: number, cursor?: string, status?: ChatSessionStatus): Promise<{ items: ChatSessionDto[]; nextCursor: string | null }>
  messages(sessionId: string, limit: number, before?: string): Promise<{ items: ChatMessage[]; nextCursor: string | null }>
  /** Merges a JSON merge patch into the context; ContextTooLargeError when the result passes the limit. */
  patchContext(id: string, patch: Record<string, unknown>): Promise<ChatSessionDto | null>
  rate(id: string, rating: number): Promise<ChatSessionDto | null>
  /** Figures for the cleanup worker: live sessions, what the next cleanup would close or remove, mean duration. */
  stats(): Promise<CleanupKindStats>
  /** Closes expired sessions, then deletes closed ones past retention with their messages, batch by batch. */
  cleanup(batchSize: number, onExpired: (closed: Array<{ id: string; closedAt: Date }>) => void): Promise<ChatCleanupReply>
}

export interface ChatStoreDeps {
  prisma: PrismaClient
  pool: pg.Pool
  /** The schema-qualified name of one of the service's tables. */
  table: (name: string) => string
  /** Persists messages (many per statement when they come together). */
  writer: { append(message: NewMessage): Promise<AppendResult> }
  /** Call after a commit that wrote outbox rows: the relay publishes them now. */
  kick: () => void
}

export interface ChatStoreOptions {
  /** The CloudEvents `source` of the service's events. */
  source: string
  sessionTimeoutHours: number
  retentionDays: number
}
