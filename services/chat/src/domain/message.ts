import type { ChatMessage, ChatSender, ChatUserType } from '@platform/contracts'

/** Who a stored message or a new session is attributed to. */
export interface Author {
  userId: string | null
  userType: ChatUserType
  loginSessionId?: string | undefined
}

export interface NewMessage {
  chatSessionId: string
  sender: ChatSender
  content: string
  metadata: Record<string, unknown>
  processingMs: number | null
  /** The connection that sent it, or for an assistant reply the one that was answered. */
  author: Author
}

export type AppendResult = { ok: true; message: ChatMessage } | { ok: false; reason: 'closed' | 'not_found' }
