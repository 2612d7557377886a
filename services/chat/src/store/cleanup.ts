import { ChatEventSubjects, type ChatCleanupReply, type ChatSessionClosedData, type CleanupKindStats } from '@platform/contracts'
import { createEvent, outboxRow } from '@platform/kit'
import type { ChatStoreDeps, ChatStoreOptions } from './chat-store.js'

export type ExpiredSessions = Array<{ id: string; closedAt: Date }>

/** What the cleanup worker asks of chat: figures, closing expired sessions, deleting closed ones past retention. */
export class SessionCleanup {
  private readonly retentionSeconds: number

  constructor(
    private readonly deps: Pick<ChatStoreDeps, 'prisma' | 'pool' | 'table' | 'kick'>,
    private readonly opts: Pick<ChatStoreOptions, 'source' | 'retentionDays'>
  ) {
    this.retentionSeconds = Math.round(opts.retentionDays * 86_400)
  }

  /** Live sessions, what the next cleanup would close or remove, and the mean duration of closed ones. */
  async stats(): Promise<CleanupKindStats> {
    const { rows } = await this.deps.pool.query<{ active: number; expired: number; average: number }>(
      `SELECT
         count(*) FILTER (WHERE status = 'active' AND expires_at > now())::int AS active,
         count(*) FILTER (WHERE (status = 'active' AND expires_at <= now())
           OR (status = 'closed' AND closed_at < now() - make_interval(secs => $1)))::int AS expired,
         COALESCE(avg(EXTRACT(EPOCH FROM closed_at - created_at)) FILTER (WHERE status = 'closed'), 0)::float8 AS average
       FROM ${this.deps.table('chat_sessions')}`,
      [this.retentionSeconds]
    )
    const r = rows[0]
    return { active: r?.active ?? 0, expired: r?.expired ?? 0, averageSessionDurationSeconds: Math.max(0, r?.average ?? 0) }
  }

  /** Closes expired sessions, then deletes closed ones past retention with their messages, batch by batch. */
  async run(batchSize: number, onExpired: (closed: ExpiredSessions) => void): Promise<ChatCleanupReply> {
    const result: ChatCleanupReply = { expired: 0, removedSessions: 0, removedMessages: 0, batches: 0 }
    for (;;) {
      const closed = await this.closeExpired(batchSize)
      if (closed.length === 0) break
      result.batches++
      result.expired += closed.length
      this.deps.kick()
      onExpired(closed)
      if (closed.length < batchSize) break
    }
    for (;;) {
      const removed = await this.removeRetired(batchSize)
      if (removed.sessions === 0) break
      result.batches++
      result.removedSessions += removed.sessions
      result.removedMessages += removed.messages
      if (removed.sessions < batchSize) break
    }
    return result
  }

  /** One batch of active sessions past expiresAt, closed with their session.closed events. */
  private closeExpired(batchSize: number): Promise<ExpiredSessions> {
    return this.deps.prisma.$transaction(async (tx) => {
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
          return outboxRow(createEvent(ChatEventSubjects.sessionClosed, this.opts.source, data))
        })
      })
      return due.map((d) => ({ id: d.id, closedAt }))
    })
  }

  /** One batch of closed sessions past retention, deleted with their messages. */
  private removeRetired(batchSize: number): Promise<{ sessions: number; messages: number }> {
    return this.deps.prisma.$transaction(async (tx) => {
      const old = await tx.$queryRaw<Array<{ id: string }>>`
        SELECT id::text AS id FROM chat_sessions
        WHERE status = 'closed' AND closed_at < now() - make_interval(secs => ${this.retentionSeconds})
        ORDER BY closed_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`
      if (old.length === 0) return { sessions: 0, messages: 0 }
      const ids = old.map((o) => o.id)
      const m = await tx.chatMessage.deleteMany({ where: { chatSessionId: { in: ids } } })
      const s = await tx.chatSession.deleteMany({ where: { id: { in: ids } } })
      return { sessions: s.count, messages: m.count }
    })
  }
}
