import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { createChatProtocol } from '../protocol/chat-protocol.js'
import type { ProtocolOptions } from '../protocol/context.js'

/** The chat protocol (src/protocol) as the hub's frame handler; shutdown first cuts assistant calls short. */
export const chatProtocolPlugin = fp<ProtocolOptions>(
  async (fastify, opts) => {
    const messagesTotal = new Counter({
      name: 'chat_messages_total',
      help: 'Chat messages persisted by this instance, by sender',
      labelNames: ['sender'] as const,
      registers: [fastify.metrics]
    })
    const { chatHub: hub, chatStore: store, chatRateLimiter: limiter, assistant, log } = fastify
    const protocol = createChatProtocol({ hub, store, limiter, assistant, log, persisted: (sender) => messagesTotal.inc({ sender }) }, opts)
    hub.onFrame(protocol.handle)
    hub.onShutdown(() => assistant.abortAll())
  },
  { name: 'chat-protocol', dependencies: ['chat-hub', 'chat-store', 'chat-rate-limiter', 'chat-assistant'] }
)
