import { randomUUID } from 'node:crypto'
import {
  CHAT_CONTEXT_MAX_BYTES,
  ChatEventSubjects,
  type ChatSession as ChatSessionDto,
  type ChatSessionClosedData,
  type ChatSessionOpenedData,
  type ChatSessionStatus
} from '@platform/contracts'
import { createEvent, keyset, keysetPage, outboxRow } from '@platform/kit'
import type { ChatSession, Prisma } from '../generated/prisma/client.js'
import { ContextTooLargeError } from '../domain/errors.js'
import { isJsonObject } from '../domain/json.js'
import { mergePatch } from '../domain/merge-patch.js'
import type { Author } from '../domain/message.js'
import type { ChatStoreDeps, ChatStoreOptions, SessionState } from './chat-store.js'
import { effectiveStatus, toSessionDto, userTypeOf } from './session-row.js'

type Tx = Prisma.TransactionClient

/** Chat sessions: opened and closed with their events, listed, found, their context and rating changed. */
export class SessionRecords {
  constructor(
    private readonly deps: Pick<ChatStoreDeps, 'prisma' | 'kick'>,
    private readonly opts: Pick<ChatStoreOptions, 'source' | 'sessionTimeoutHours'>
  ) {}

  async create(author: Author): Promise<SessionState> {
    const { prisma } = this.deps
    const createdAt = new Date()
    const expiresAt = new Date(createdAt.getTime() + this.opts.sessionTimeoutHours * 3_600_000)
    const id = randomUUID()
    const data: ChatSessionOpenedData = {
      chatSessionId: id,
      userId: author.userId,
      userType: author.userType,
      ...(author.loginSessionId ? { loginSessionId: author.loginSessionId } : {})
    }
    const [s] = await prisma.$transaction([
      prisma.chatSession.create({ data: { id, userId: author.userId, userType: author.userType, createdAt, updatedAt: createdAt, expiresAt } }),
      prisma.outboxEvent.create({ data: this.event(ChatEventSubjects.sessionOpened, data) })
    ])
    this.deps.kick()
    return { id: s.id, userId: s.userId, userType: author.userType, status: 'active', lastSeq: 0 }
  }

  async state(id: string): Promise<SessionState | null> {
    const s = await this.deps.prisma.chatSession.findUnique({
      where: { id },
      select: { id: true, userId: true, userType: true, status: true, expiresAt: true, lastSeq: true }
    })
    if (!s) return null
    return { id: s.id, userId: s.userId, userType: userTypeOf(s.userType), status: effectiveStatus(s), lastSeq: s.lastSeq }
  }

  /** Closes an active session with its session.closed event; null when it was not active. */
  async close(id: string, reason: 'user' | 'expired'): Promise<ChatSessionDto | null> {
    const closed = await this.update(async (tx) => {
      const closedAt = new Date()
      const { count } = await tx.chatSession.updateMany({ where: { id, status: 'active' }, data: { status: 'closed', closedAt } })
      if (count === 0) return null
      const s = await tx.chatSession.findUniqueOrThrow({ where: { id } })
      const data: ChatSessionClosedData = { chatSessionId: id, userId: s.userId, reason, closedAt: closedAt.toISOString() }
      await tx.outboxEvent.create({ data: this.event(ChatEventSubjects.sessionClosed, data) })
      return s
    })
    if (closed) this.deps.kick()
    return closed
  }

  async find(id: string): Promise<ChatSessionDto | null> {
    const s = await this.deps.prisma.chatSession.findUnique({ where: { id } })
    return s ? toSessionDto(s) : null
  }

  /** A user's sessions, newest first, a keyset page at a time. */
  async list(userId: string, limit: number, cursor?: string, status?: ChatSessionStatus) {
    const k = keyset(cursor, limit, 'desc')
    const rows = await this.deps.prisma.chatSession.findMany({
      where: { userId, ...(status ? { status } : {}), ...k.where },
      orderBy: k.orderBy,
      take: k.take
    })
    const { page, nextCursor } = keysetPage(rows, limit)
    return { items: page.map(toSessionDto), nextCursor }
  }

  patchContext(id: string, patch: Record<string, unknown>): Promise<ChatSessionDto | null> {
    // A parsed JSON body is always JSON; the check gives it the type Prisma's Json column takes.
    if (!isJsonObject(patch)) throw new TypeError('A context patch is a JSON object')
    return this.update(async (tx) => {
      const locked = await tx.$queryRaw<Array<{ context: unknown }>>`
        SELECT context FROM chat_sessions WHERE id = ${id}::uuid FOR UPDATE`
      const current = locked[0]
      if (!current) return null
      const context = mergePatch(isJsonObject(current.context) ? current.context : {}, patch)
      const bytes = Buffer.byteLength(JSON.stringify(context))
      if (bytes > CHAT_CONTEXT_MAX_BYTES) throw new ContextTooLargeError(bytes, CHAT_CONTEXT_MAX_BYTES)
      return tx.chatSession.update({ where: { id }, data: { context } })
    })
  }

  async rate(id: string, rating: number): Promise<ChatSessionDto | null> {
    const { count } = await this.deps.prisma.chatSession.updateMany({ where: { id }, data: { satisfactionRating: rating } })
    return count ? this.find(id) : null
  }

  private event(type: string, data: object) {
    return outboxRow(createEvent(type, this.opts.source, data))
  }

  private async update(fn: (tx: Tx) => Promise<ChatSession | null>): Promise<ChatSessionDto | null> {
    const s = await this.deps.prisma.$transaction(fn)
    return s ? toSessionDto(s) : null
  }
}
