import type pg from 'pg'
import type { ChatMessage } from '@platform/contracts'
import { MESSAGE_COLUMNS, messageFromRow, type MessageRow } from './message-row.js'

/** Reads of a session's messages: by seq for the WebSocket side, by id pages for REST. */
export class MessageReads {
  private readonly messages: string
  private readonly select: string

  constructor(
    private readonly pool: pg.Pool,
    table: (name: string) => string
  ) {
    this.messages = table('chat_messages')
    this.select = `SELECT ${MESSAGE_COLUMNS} FROM ${this.messages}`
  }

  /** The latest `limit` messages, oldest first. */
  async latest(sessionId: string, limit: number): Promise<ChatMessage[]> {
    const rows = await this.query(`${this.select} WHERE chat_session_id = $1 ORDER BY seq DESC LIMIT $2`, [sessionId, limit])
    return rows.reverse()
  }

  /** Every message after `afterId` with the anchor's seq; null when it is not a message of the session or more than `max` follow. */
  async replay(sessionId: string, afterId: string, max: number): Promise<{ messages: ChatMessage[]; anchorSeq: number } | null> {
    const anchor = await this.pool.query<{ seq: number }>(`SELECT seq FROM ${this.messages} WHERE id = $1 AND chat_session_id = $2`, [
      afterId,
      sessionId
    ])
    const anchorSeq = anchor.rows[0]?.seq
    if (anchorSeq === undefined) return null
    // Ids grow with seq inside a session (seqs are given under its row lock), so "after the id" is "after its seq".
    const rows = await this.query(`${this.select} WHERE chat_session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [sessionId, anchorSeq, max + 1])
    return rows.length > max ? null : { messages: rows, anchorSeq }
  }

  /** Messages with afterSeq < seq ≤ upToSeq (no upper bound when null), in order, the first `limit` when given. */
  range(sessionId: string, afterSeq: number, upToSeq?: number | null, limit?: number): Promise<ChatMessage[]> {
    // LIMIT NULL is no limit.
    const upTo = upToSeq ?? null
    return upTo === null
      ? this.query(`${this.select} WHERE chat_session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [sessionId, afterSeq, limit ?? null])
      : this.query(`${this.select} WHERE chat_session_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`, [
          sessionId,
          afterSeq,
          upTo,
          limit ?? null
        ])
  }

  /** A REST page: the `limit` messages before the id `before` (the latest without it), oldest first. */
  async page(sessionId: string, limit: number, before?: string): Promise<{ items: ChatMessage[]; nextCursor: string | null }> {
    const rows = before
      ? await this.query(`${this.select} WHERE chat_session_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2`, [sessionId, limit + 1, before])
      : await this.query(`${this.select} WHERE chat_session_id = $1 ORDER BY id DESC LIMIT $2`, [sessionId, limit + 1])
    const page = rows.slice(0, limit).reverse()
    return { items: page, nextCursor: rows.length > limit && page[0] ? page[0].id : null }
  }

  private async query(sql: string, params: unknown[]): Promise<ChatMessage[]> {
    return (await this.pool.query<MessageRow>(sql, params)).rows.map(messageFromRow)
  }
}
