import type { ChatMessage, ChatSender } from '@platform/contracts'

/** A chat_messages row as MESSAGE_COLUMNS selects it. */
export interface MessageRow {
  id: string
  chat_session_id: string
  seq: number
  sender: ChatSender
  content: string
  metadata: Record<string, unknown>
  processing_ms: number | null
  created_at: Date
}

export const MESSAGE_COLUMNS = 'id::text AS id, chat_session_id, seq, sender, content, metadata, processing_ms, created_at'

export const messageFromRow = (r: MessageRow): ChatMessage => ({
  id: r.id,
  chatSessionId: r.chat_session_id,
  seq: r.seq,
  sender: r.sender,
  content: r.content,
  metadata: r.metadata,
  processingMs: r.processing_ms,
  createdAt: r.created_at.toISOString()
})
