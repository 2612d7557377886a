import type { ChatMessage } from '@platform/contracts'

/** What a responder is asked: the new message and, when it wants it, the session's recent history. */
export interface AssistantRequest {
  chatSessionId: string
  content: string
  /** Oldest first, ending with the message being answered (empty for responders that do not need it). */
  history: ChatMessage[]
}

export interface AssistantAnswer {
  content: string
  metadata: Record<string, unknown>
}

/** A pluggable source of assistant replies. */
export interface Responder {
  readonly name: string
  /** Whether `respond` uses the session's recent history (read from Postgres only when it does). */
  readonly needsHistory: boolean
  respond(request: AssistantRequest, signal: AbortSignal): Promise<AssistantAnswer>
}
