import { SessionCleanup } from './cleanup.js'
import { MessageReads } from './message-reads.js'
import { SessionRecords } from './sessions.js'
import type { ChatStore, ChatStoreDeps, ChatStoreOptions } from './chat-store.js'

/** Chat sessions and messages in Postgres, with their events in the outbox. */
export function createChatStore(deps: ChatStoreDeps, opts: ChatStoreOptions): ChatStore {
  const sessions = new SessionRecords(deps, opts)
  const reads = new MessageReads(deps.pool, deps.table)
  const cleanup = new SessionCleanup(deps, opts)
  return {
    createSession: (author) => sessions.create(author),
    sessionState: (id) => sessions.state(id),
    latest: (sessionId, limit) => reads.latest(sessionId, limit),
    replay: (sessionId, afterId, max) => reads.replay(sessionId, afterId, max),
    range: (sessionId, afterSeq, upToSeq, limit) => reads.range(sessionId, afterSeq, upToSeq, limit),
    append: (message) => deps.writer.append(message),
    close: (id, reason) => sessions.close(id, reason),
    find: (id) => sessions.find(id),
    list: (userId, limit, cursor, status) => sessions.list(userId, limit, cursor, status),
    messages: (sessionId, limit, before) => reads.page(sessionId, limit, before),
    patchContext: (id, patch) => sessions.patchContext(id, patch),
    rate: (id, rating) => sessions.rate(id, rating),
    stats: () => cleanup.stats(),
    cleanup: (batchSize, onExpired) => cleanup.run(batchSize, onExpired)
  }
}
