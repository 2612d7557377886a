import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import {
  CHAT_CONTEXT_MAX_BYTES,
  ChatEventSubjects,
  type ChatCleanupReply,
  type ChatMessage,
  type ChatSession as ChatSessionDto,
  type ChatSessionClosedData,
  type ChatSessionOpenedData,
  type ChatSessionStatus,
  type ChatUserType,
  type CleanupKindStats
} from '@platform/contracts'
import { createEvent, outboxRow } from '@platform/kit'
import { Prisma, type ChatSession } from '../generated/prisma/client.js'
import { decodeCursor, encodeCursor } from '@platform/kit'
import { mergePatch } from '../domain/merge-patch.js'
import { ContextTooLargeError } from '../domain/errors.js'
import type { AppendResult, Author, NewMessage } from '../domain/message.js'
import { MESSAGE_COLUMNS, MessageWriter, messageFromRow, type MessageRow } from './message-writer.js'

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
  patchContext(id: string, patch: Record<string, unknown>): Promise<ChatSessionDto | null>
  rate(id: string, rating: number): Promise<ChatSessionDto | null>
  /** Figures for the cleanup worker: live sessions, what the next cleanup would close or remove, mean duration. */
  stats(): Promise<CleanupKindStats>
  /** Closes expired sessions, then deletes closed ones past retention with their messages, batch by batch. */
  cleanup(batchSize: number, onExpired: (closed: Array<{ id: string; closedAt: Date }>) => void): Promise<ChatCleanupReply>
}

declare module 'fastify' {
  interface FastifyInstance {
    chatStore: ChatStore
  }
}

export function toSessionDto(s: ChatSession): ChatSessionDto {
  return {
    id: s.id,
    userId: s.userId,
    userType: s.userType as ChatUserType,
    status: s.status as ChatSessionStatus,
    context: (s.context ?? {}) as Record<string, unknown>,
    satisfactionRating: s.satisfactionRating,
    messageCount: s.lastSeq,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    closedAt: s.closedAt ? s.closedAt.toISOString() : null,
    expiresAt: s.expiresAt.toISOString()
  }
}

/** A session past expiresAt takes no more messages, even before the cleanup marks it closed. */
const effectiveStatus = (s: { status: string; expiresAt: Date }): ChatSessionStatus =>
  s.status === 'active' && s.expiresAt.getTime() > Date.now() ? 'active' : 'closed'

const KICK_INTERVAL_MS = 20

export interface ChatStoreOptions {
  source: string
  sessionTimeoutHours: number
  retentionDays: number
}

export const chatStorePlugin = fp<ChatStoreOptions>(
  async (fastify, opts) => {
    const { prisma } = fastify
    const { pool } = fastify.db
    const messages = fastify.db.table('chat_messages')
    const sessions = fastify.db.table('chat_sessions')

    // Messages come by the thousand: the relay is woken at most every KICK_INTERVAL_MS for them, so it
    // publishes in batches instead of running once per message; one that just missed a kick goes with
    // the next kick or the relay's poll (OUTBOX_POLL_MS).
    let lastKick = 0
    const kickSoon = () => {
      const now = Date.now()
      if (now - lastKick < KICK_INTERVAL_MS) return
      lastKick = now
      fastify.outbox.kick()
    }

    const writer = new MessageWriter({
      pool,
      table: fastify.db.table,
      source: opts.source,
      // Half the pool writes messages; the rest stays for reads, REST and the outbox relay.
      concurrency: Math.max(1, Math.floor((pool.options.max ?? 10) / 2)),
      maxBatch: 500,
      onWritten: kickSoon
    })

    const emit = (tx: Prisma.TransactionClient, type: string, data: object) =>
      tx.outboxEvent.create({ data: outboxRow(createEvent(type, opts.source, data)) })

    const query = async (sql: string, params: unknown[]) => (await pool.query<MessageRow>(sql, params)).rows.map(messageFromRow)

    const updateOwned = async (id: string, fn: (tx: Prisma.TransactionClient) => Promise<ChatSession | null>) =>
      prisma.$transaction(fn).then((s) => (s ? toSessionDto(s) : null))

    const store: ChatStore = {
      async createSession(author) {
        const createdAt = new Date()
        const expiresAt = new Date(createdAt.getTime() + opts.sessionTimeoutHours * 3_600_000)
        const id = randomUUID()
        const data: ChatSessionOpenedData = {
          chatSessionId: id,
          userId: author.userId,
          userType: author.userType,
          ...(author.loginSessionId ? { loginSessionId: author.loginSessionId } : {})
        }
        const [s] = await prisma.$transaction([
          prisma.chatSession.create({
            data: { id, userId: author.userId, userType: author.userType, createdAt, updatedAt: createdAt, expiresAt }
          }),
          prisma.outboxEvent.create({ data: outboxRow(createEvent(ChatEventSubjects.sessionOpened, opts.source, data)) })
        ])
        fastify.outbox.kick()
        return { id: s.id, userId: s.userId, userType: author.userType, status: 'active', lastSeq: 0 }
      },

      async sessionState(id) {
        const s = await prisma.chatSession.findUnique({
          where: { id },
          select: { id: true, userId: true, userType: true, status: true, expiresAt: true, lastSeq: true }
        })
        if (!s) return null
        return { id: s.id, userId: s.userId, userType: s.userType as ChatUserType, status: effectiveStatus(s), lastSeq: s.lastSeq }
      },

      async latest(sessionId, limit) {
        const rows = await query(`SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 ORDER BY seq DESC LIMIT $2`, [
          sessionId,
          limit
        ])
        return rows.reverse()
      },

      async replay(sessionId, afterId, max) {
        const anchor = await pool.query<{ seq: number }>(`SELECT seq FROM ${messages} WHERE id = $1 AND chat_session_id = $2`, [
          afterId,
          sessionId
        ])
        const anchorSeq = anchor.rows[0]?.seq
        if (anchorSeq === undefined) return null
        // Ids grow with seq inside a session (seqs are given under its row lock), so "after the id" is "after its seq".
        const rows = await query(
          `SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
          [sessionId, anchorSeq, max + 1]
        )
        return rows.length > max ? null : { messages: rows, anchorSeq }
      },

      range(sessionId, afterSeq, upToSeq, limit) {
        // LIMIT NULL is no limit.
        const upTo = upToSeq ?? null
        return upTo === null
          ? query(`SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [
              sessionId,
              afterSeq,
              limit ?? null
            ])
          : query(
              `SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
              [sessionId, afterSeq, upTo, limit ?? null]
            )
      },

      append(m) {
        return writer.append(m)
      },

      async close(id, reason) {
        const closed = await updateOwned(id, async (tx) => {
          const closedAt = new Date()
          const { count } = await tx.chatSession.updateMany({ where: { id, status: 'active' }, data: { status: 'closed', closedAt } })
          if (count === 0) return null
          const s = await tx.chatSession.findUniqueOrThrow({ where: { id } })
          const data: ChatSessionClosedData = { chatSessionId: id, userId: s.userId, reason, closedAt: closedAt.toISOString() }
          await emit(tx, ChatEventSubjects.sessionClosed, data)
          return s
        })
        if (closed) fastify.outbox.kick()
        return closed
      },

      async find(id) {
        const s = await prisma.chatSession.findUnique({ where: { id } })
        return s ? toSessionDto(s) : null
      },

      async list(userId, limit, cursor, status) {
        const after = cursor ? decodeCursor(cursor) : null
        const rows = await prisma.chatSession.findMany({
          where: {
            userId,
            ...(status ? { status } : {}),
            ...(after
              ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
              : {})
          },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
          take: limit + 1
        })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return { items: page.map(toSessionDto), nextCursor: rows.length > limit && last ? encodeCursor(last) : null }
      },

      async messages(sessionId, limit, before) {
        const rows = await query(
          before
            ? `SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2`
            : `SELECT ${MESSAGE_COLUMNS} FROM ${messages} WHERE chat_session_id = $1 ORDER BY id DESC LIMIT $2`,
          before ? [sessionId, limit + 1, before] : [sessionId, limit + 1]
        )
        const page = rows.slice(0, limit).reverse()
        return { items: page, nextCursor: rows.length > limit && page[0] ? page[0].id : null }
      },

      patchContext(id, patch) {
        return updateOwned(id, async (tx) => {
          const locked = await tx.$queryRaw<Array<{ context: Record<string, unknown> }>>`
            SELECT context FROM chat_sessions WHERE id = ${id}::uuid FOR UPDATE`
          const current = locked[0]
          if (!current) return null
          const context = mergePatch(current.context ?? {}, patch)
          const bytes = Buffer.byteLength(JSON.stringify(context))
          if (bytes > CHAT_CONTEXT_MAX_BYTES) throw new ContextTooLargeError(bytes, CHAT_CONTEXT_MAX_BYTES)
          return tx.chatSession.update({ where: { id }, data: { context: context as Prisma.InputJsonObject } })
        })
      },

      async rate(id, rating) {
        const { count } = await prisma.chatSession.updateMany({ where: { id }, data: { satisfactionRating: rating } })
        return count ? store.find(id) : null
      },

      async stats() {
        const retentionSeconds = Math.round(opts.retentionDays * 86_400)
        const { rows } = await pool.query<{ active: number; expired: number; average: number }>(
          `SELECT
             count(*) FILTER (WHERE status = 'active' AND expires_at > now())::int AS active,
             count(*) FILTER (WHERE (status = 'active' AND expires_at <= now())
               OR (status = 'closed' AND closed_at < now() - make_interval(secs => $1)))::int AS expired,
             COALESCE(avg(EXTRACT(EPOCH FROM closed_at - created_at)) FILTER (WHERE status = 'closed'), 0)::float8 AS average
           FROM ${sessions}`,
          [retentionSeconds]
        )
        const r = rows[0]
        return { active: r?.active ?? 0, expired: r?.expired ?? 0, averageSessionDurationSeconds: Math.max(0, r?.average ?? 0) }
      },

      async cleanup(batchSize, onExpired) {
        const result: ChatCleanupReply = { expired: 0, removedSessions: 0, removedMessages: 0, batches: 0 }
        for (;;) {
          const closed = await prisma.$transaction(async (tx) => {
            const due = await tx.$queryRaw<Array<{ id: string; user_id: string | null }>>`
              SELECT id::text AS id, user_id FROM chat_sessions
              WHERE status = 'active' AND expires_at <= now()
              ORDER BY expires_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`
            if (due.length === 0) return []
            const closedAt = new Date()
            await tx.chatSession.updateMany({ where: { id: { in: due.map((d) => d.id) } }, data: { status: 'closed', closedAt } })
            await tx.outboxEvent.createMany({
              data: due.map((d) => {
                const data: ChatSessionClosedData = { chatSessionId: d.id, userId: d.user_id, reason: 'expired', closedAt: closedAt.toISOString() }
                return outboxRow(createEvent(ChatEventSubjects.sessionClosed, opts.source, data))
              })
            })
            return due.map((d) => ({ id: d.id, closedAt }))
          })
          if (closed.length === 0) break
          result.batches++
          result.expired += closed.length
          fastify.outbox.kick()
          onExpired(closed)
          if (closed.length < batchSize) break
        }
        const retentionSeconds = Math.round(opts.retentionDays * 86_400)
        for (;;) {
          const removed = await prisma.$transaction(async (tx) => {
            const old = await tx.$queryRaw<Array<{ id: string }>>`
              SELECT id::text AS id FROM chat_sessions
              WHERE status = 'closed' AND closed_at < now() - make_interval(secs => ${retentionSeconds})
              ORDER BY closed_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`
            if (old.length === 0) return { sessions: 0, messages: 0 }
            const ids = old.map((o) => o.id)
            const m = await tx.chatMessage.deleteMany({ where: { chatSessionId: { in: ids } } })
            const s = await tx.chatSession.deleteMany({ where: { id: { in: ids } } })
            return { sessions: s.count, messages: m.count }
          })
          if (removed.sessions === 0) break
          result.batches++
          result.removedSessions += removed.sessions
          result.removedMessages += removed.messages
          if (removed.sessions < batchSize) break
        }
        return result
      }
    }
    fastify.decorate('chatStore', store)
  },
  { name: 'chat-store', dependencies: ['prisma', 'platform-db', 'platform-outbox'] }
)
