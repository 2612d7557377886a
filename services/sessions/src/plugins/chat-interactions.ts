import fp from 'fastify-plugin'
import { Compile } from 'typebox/compile'
import { ChatEventSubjects, ChatMessageCreatedData } from '@platform/contracts'
import { createEventConsumer, type EventConsumer } from '@platform/kit'

declare module 'fastify' {
  interface FastifyInstance {
    chatInteractions: EventConsumer
  }
}

// The consumer has checked the data against this schema already; the compiled check only gives it its type.
const isMessage = Compile(ChatMessageCreatedData)

/** Counts each user message sent from a login session (chat.events.message.created), once per event (source, id). */
export const chatInteractionsPlugin = fp<{ durable: string }>(
  async (fastify, { durable }) => {
    const consumer = createEventConsumer(fastify, {
      stream: 'chat',
      durable,
      filterSubject: ChatEventSubjects.messageCreated,
      types: { [ChatEventSubjects.messageCreated]: ChatMessageCreatedData },
      handle: async (items) => {
        for (const { event } of items) {
          const data = event.data
          if (isMessage.Check(data) && data.sender === 'user' && data.loginSessionId) {
            await fastify.loginSessions.countChatInteraction(event, data.loginSessionId)
          }
        }
      }
    })
    fastify.decorate('chatInteractions', consumer)
  },
  { name: 'chat-interactions', dependencies: ['login-sessions', 'platform-nats'] }
)
