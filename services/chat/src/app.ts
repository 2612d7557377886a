import fastifyWebsocket from '@fastify/websocket'
import { defineService } from '@platform/kit'
import type { Config } from './config.js'
import { selectProtocol } from './domain/identity.js'
import { prismaPlugin } from './plugins/prisma.js'
import { chatStorePlugin } from './plugins/chat-store.js'
import { rateLimiterPlugin } from './plugins/rate-limiter.js'
import { liveBusPlugin } from './plugins/live-bus.js'
import { assistantPlugin } from './plugins/assistant.js'
import { chatHubPlugin } from './plugins/chat-hub.js'
import { chatProtocolPlugin } from './plugins/chat-protocol.js'
import { wsRoutes } from './routes/ws.js'
import { sessionRoutes } from './routes/sessions.js'
import { internalRoutes } from './routes/internal.js'

export interface ChatAppOptions {
  config: Config
  /** Epoch ms for token expiry on open sockets [Date.now]; tests move it instead of waiting. */
  now?: () => number
}

/** The chat service as a plugin: what server.ts listens with and what tests build. */
export const app = defineService<ChatAppOptions>({
  platform: () => ({ postgres: true, redis: true, nats: { streams: ['chat'] }, outbox: true }),

  async plugins(fastify, { config, now }) {
    await fastify.register(prismaPlugin)
    await fastify.register(chatStorePlugin, {
      source: `/${config.SERVICE_NAME}`,
      sessionTimeoutHours: config.SESSION_TIMEOUT_HOURS,
      retentionDays: config.CHAT_RETENTION_DAYS
    })
    await fastify.register(rateLimiterPlugin, { limit: config.RATE_LIMIT_MESSAGES_PER_MINUTE, windowMs: config.RATE_LIMIT_WINDOW_MS })
    await fastify.register(liveBusPlugin)
    await fastify.register(assistantPlugin, {
      knowledgePath: config.ASSISTANT_KNOWLEDGE_PATH,
      url: config.ASSISTANT_URL,
      apiKey: config.ASSISTANT_API_KEY,
      model: config.ASSISTANT_MODEL,
      systemPrompt: config.ASSISTANT_SYSTEM_PROMPT,
      timeoutMs: Math.round(config.RESPONSE_TIMEOUT_SECONDS * 1000),
      maxAnswerLength: 10_000,
      breaker: {
        errorPercent: config.ASSISTANT_BREAKER_ERROR_PERCENT,
        volume: config.ASSISTANT_BREAKER_VOLUME,
        windowMs: config.ASSISTANT_BREAKER_WINDOW_MS,
        resetMs: config.ASSISTANT_BREAKER_RESET_MS
      }
    })
    await fastify.register(chatHubPlugin, {
      heartbeatMs: config.HEARTBEAT_INTERVAL_MS,
      maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
      maxPendingFrames: config.WS_MAX_PENDING_FRAMES,
      gapFillDelayMs: config.GAP_FILL_DELAY_MS,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
      ...(now ? { now } : {})
    })
    await fastify.register(chatProtocolPlugin, {
      maxMessageLength: config.MAX_MESSAGE_LENGTH,
      maxHistoryMessages: config.MAX_HISTORY_MESSAGES,
      maxReplayMessages: config.MAX_REPLAY_MESSAGES,
      typingThrottleMs: config.TYPING_THROTTLE_MS,
      assistantEnabled: config.ASSISTANT_ENABLED,
      assistantHistoryMessages: config.ASSISTANT_HISTORY_MESSAGES
    })
    await fastify.register(fastifyWebsocket, {
      options: {
        maxPayload: config.WS_MAX_PAYLOAD_BYTES,
        perMessageDeflate: false,
        clientTracking: false,
        handleProtocols: (protocols) => selectProtocol(protocols)
      },
      // Shutdown in order (HOUSE-STYLE 9): in-flight messages persisted, then 1012 for every client.
      preClose: async function () {
        await fastify.chatHub.shutdown()
        fastify.websocketServer.close()
      }
    })
  },

  async routes(fastify, { config }) {
    await fastify.register(wsRoutes, {
      allowAnonymous: config.CHAT_ALLOW_ANONYMOUS,
      maxMessageLength: config.MAX_MESSAGE_LENGTH,
      messagesPerMinute: config.RATE_LIMIT_MESSAGES_PER_MINUTE,
      maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES
    })
    await fastify.register(sessionRoutes)
    await fastify.register(internalRoutes, { batchSize: config.CLEANUP_BATCH_SIZE })
  }
})
