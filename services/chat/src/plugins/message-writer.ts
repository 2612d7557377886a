import type pg from 'pg'
import { randomUUID } from 'node:crypto'
import { ChatEventSubjects, type ChatMessageCreatedData } from '@platform/contracts'
import { createEvent } from '@platform/kit'
import type { AppendResult, NewMessage } from '../domain/message.js'
import { MESSAGE_COLUMNS, messageFromRow, type MessageRow } from '../store/message-row.js'

interface Pending {
  message: NewMessage
  resolve: (r: AppendResult) => void
  reject: (err: unknown) => void
}

export interface MessageWriterOptions {
  pool: pg.Pool
  table: (name: string) => string
  source: string
  /** Statements in flight at once; messages arriving meanwhile wait and go together in the next one. */
  concurrency: number
  maxBatch: number
  /** After a batch committed with at least one message (the outbox relay is due). */
  onWritten: () => void
}

/**
 * Persists messages with their message.created outbox rows, many per statement when they come fast:
 * group commit in the application, so a burst costs one transaction instead of one each, while a lone
 * message still goes at once. In one statement the sessions' rows are locked in id order (no deadlock
 * between instances), each session's `last_seq` grows by its messages, the messages get consecutive
 * seqs in arrival order, and a closed or expired session's messages are left out.
 */
export class MessageWriter {
  private readonly queue: Pending[] = []
  private inflight = 0
  private scheduled = false
  private readonly sql: string
  private readonly existsSql: string

  constructor(private readonly opts: MessageWriterOptions) {
    const sessions = opts.table('chat_sessions')
    const messages = opts.table('chat_messages')
    const outbox = opts.table('outbox')
    this.existsSql = `SELECT id::text AS id FROM ${sessions} WHERE id = ANY($1::uuid[])`
    this.sql = `
      WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::uuid[], $7::jsonb[])
          WITH ORDINALITY AS i(session_id, sender, content, metadata, processing_ms, event_id, event_data, ord)
      ), locked AS (
        SELECT id FROM ${sessions}
        WHERE id IN (SELECT session_id FROM input) AND status = 'active' AND expires_at > now()
        ORDER BY id FOR UPDATE
      ), counts AS (
        SELECT session_id, count(*)::int AS n FROM input WHERE session_id IN (SELECT id FROM locked) GROUP BY session_id
      ), s AS (
        UPDATE ${sessions} c SET last_seq = c.last_seq + counts.n, updated_at = now()
        FROM counts WHERE c.id = counts.session_id
        RETURNING c.id, c.last_seq - counts.n AS base
      ), numbered AS (
        SELECT i.*, (s.base + row_number() OVER (PARTITION BY i.session_id ORDER BY i.ord))::int AS seq
        FROM input i JOIN s ON s.id = i.session_id
      ), m AS (
        INSERT INTO ${messages} (chat_session_id, seq, sender, content, metadata, processing_ms)
        SELECT session_id, seq, sender, content, metadata, processing_ms FROM numbered ORDER BY session_id, seq
        RETURNING ${MESSAGE_COLUMNS}
      ), o AS (
        INSERT INTO ${outbox} (id, type, envelope)
        SELECT n.event_id, $8, $9::jsonb || jsonb_build_object('id', n.event_id, 'data', n.event_data || jsonb_build_object(
          'messageId', m.id, 'seq', m.seq,
          'createdAt', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
        FROM m JOIN numbered n ON n.session_id = m.chat_session_id AND n.seq = m.seq
        ORDER BY m.seq
      )
      SELECT m.*, n.ord::int AS ord FROM m JOIN numbered n ON n.session_id = m.chat_session_id AND n.seq = m.seq`
  }

  append(message: NewMessage): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject })
      this.schedule()
    })
  }

  /** Waits one turn of the event loop so that messages arriving together share a statement. */
  private schedule(): void {
    if (this.scheduled || this.inflight >= this.opts.concurrency || this.queue.length === 0) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      void this.flush()
    })
  }

  private async flush(): Promise<void> {
    if (this.inflight >= this.opts.concurrency || this.queue.length === 0) return
    const batch = this.queue.splice(0, this.opts.maxBatch)
    this.inflight++
    this.schedule()
    try {
      await this.write(batch)
    } catch (err) {
      for (const p of batch) p.reject(err)
    } finally {
      this.inflight--
      this.schedule()
    }
  }

  /** One statement for the batch; each waiting append gets its message, or why its session took none. */
  private async write(batch: Pending[]): Promise<void> {
    const base = createEvent(ChatEventSubjects.messageCreated, this.opts.source, {})
    const col = <T>(fn: (m: NewMessage) => T) => batch.map((p) => fn(p.message))
    const { rows } = await this.opts.pool.query<MessageRow & { ord: number }>(this.sql, [
      col((m) => m.chatSessionId),
      col((m) => m.sender),
      col((m) => m.content),
      col((m) => JSON.stringify(m.metadata)),
      col((m) => m.processingMs),
      col(() => randomUUID()),
      col((m) => JSON.stringify(eventData(m))),
      base.type,
      JSON.stringify({ ...base, id: undefined, data: undefined })
    ])
    const written = new Map(rows.map((row) => [row.ord - 1, messageFromRow(row)]))
    if (rows.length > 0) this.opts.onWritten()
    // Left out: the session is closed or expired, or it no longer exists.
    const refused = batch.filter((_, i) => !written.has(i)).map((p) => p.message.chatSessionId)
    const exists = refused.length > 0 ? await this.existing(refused) : new Set<string>()
    batch.forEach((p, i) => {
      const message = written.get(i)
      p.resolve(message ? { ok: true, message } : { ok: false, reason: exists.has(p.message.chatSessionId) ? 'closed' : 'not_found' })
    })
  }

  private async existing(chatSessionIds: string[]): Promise<Set<string>> {
    const { rows } = await this.opts.pool.query<{ id: string }>(this.existsSql, [[...new Set(chatSessionIds)]])
    return new Set(rows.map((r) => r.id))
  }
}

function eventData(m: NewMessage): Omit<ChatMessageCreatedData, 'messageId' | 'seq' | 'createdAt'> {
  return {
    chatSessionId: m.chatSessionId,
    sender: m.sender,
    userId: m.author.userId,
    userType: m.author.userType,
    ...(m.author.loginSessionId ? { loginSessionId: m.author.loginSessionId } : {}),
    contentLength: m.content.length
  }
}
