import type { ChatMessage } from '@platform/contracts'
import type { Author } from '../domain/message.js'
import type { ProtocolContext } from './context.js'

/** The assistant's reply to one user message, persisted and broadcast like any message; failures are logged. */
export async function answer(ctx: ProtocolContext, chatSessionId: string, question: ChatMessage, author: Author): Promise<void> {
  const { assistant, store, hub } = ctx
  try {
    const history = assistant.needsHistory ? await store.latest(chatSessionId, ctx.opts.assistantHistoryMessages) : []
    const reply = await assistant.reply({ chatSessionId, content: question.content, history })
    const result = await store.append({
      chatSessionId,
      sender: 'assistant',
      content: reply.content,
      metadata: { ...reply.metadata, replyTo: question.id },
      processingMs: reply.processingMs,
      author
    })
    if (!result.ok) return // closed meanwhile: nobody is waiting for the answer
    ctx.persisted('assistant')
    hub.publishMessage(chatSessionId, result.message, null)
  } catch (err) {
    ctx.log.warn({ err, chatSessionId, messageId: question.id }, 'could not store the assistant reply')
  }
}
