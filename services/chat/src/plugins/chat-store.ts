import fp from 'fastify-plugin'
import type { ChatStore, ChatStoreOptions } from '../store/chat-store.js'
import { createChatStore } from '../store/create-chat-store.js'
import { MessageWriter } from './message-writer.js'

declare module 'fastify' {
  interface FastifyInstance {
    chatStore: ChatStore
  }
}

const KICK_INTERVAL_MS = 20

/** Sessions and messages in Postgres (src/store), messages written in groups by the MessageWriter. */
export const chatStorePlugin = fp<ChatStoreOptions>(
  async (fastify, opts) => {
    const { pool } = fastify.db
    const table = (name: string) => fastify.db.table(name)
    const kick = () => fastify.outbox.kick()
    // Messages come by the thousand: the relay is woken at most every KICK_INTERVAL_MS for them, so it
    // publishes in batches instead of running once per message; one that just missed a kick goes with
    // the next kick or the relay's poll (OUTBOX_POLL_MS).
    let lastKick = 0
    const kickSoon = () => {
      const now = Date.now()
      if (now - lastKick < KICK_INTERVAL_MS) return
      lastKick = now
      kick()
    }
    const writer = new MessageWriter({
      pool,
      table,
      source: opts.source,
      // Half the pool writes messages; the rest stays for reads, REST and the outbox relay.
      concurrency: Math.max(1, Math.floor((pool.options.max ?? 10) / 2)),
      maxBatch: 500,
      onWritten: kickSoon
    })
    fastify.decorate('chatStore', createChatStore({ prisma: fastify.prisma, pool, table, writer, kick }, opts))
  },
  { name: 'chat-store', dependencies: ['prisma', 'platform-db', 'platform-outbox'] }
)
