import { Compile } from 'typebox/compile'
import type { TSchema } from 'typebox'
import { ChatJsonObject, ChatSessionStatus, ChatUserType, type ChatSession as ChatSessionDto } from '@platform/contracts'
import type { ChatSession } from '../generated/prisma/client.js'

/** A column that the migration's CHECK constraint (or the writer) keeps inside its contract type, narrowed to it. */
function column<T extends TSchema>(schema: T, name: string) {
  const validator = Compile(schema)
  return (value: unknown) => {
    if (validator.Check(value)) return value
    throw new Error(`${name} holds ${JSON.stringify(value)}, which its contract does not allow`)
  }
}

export const userTypeOf = column(ChatUserType, 'chat_sessions.user_type')
const statusOf = column(ChatSessionStatus, 'chat_sessions.status')
const contextOf = column(ChatJsonObject, 'chat_sessions.context')

export function toSessionDto(s: ChatSession): ChatSessionDto {
  return {
    id: s.id,
    userId: s.userId,
    userType: userTypeOf(s.userType),
    status: statusOf(s.status),
    context: contextOf(s.context ?? {}),
    satisfactionRating: s.satisfactionRating,
    messageCount: s.lastSeq,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    closedAt: s.closedAt ? s.closedAt.toISOString() : null,
    expiresAt: s.expiresAt.toISOString()
  }
}

/** A session past expiresAt takes no more messages, even before the cleanup marks it closed. */
export const effectiveStatus = (s: { status: string; expiresAt: Date }): ChatSessionStatus =>
  s.status === 'active' && s.expiresAt.getTime() > Date.now() ? 'active' : 'closed'
