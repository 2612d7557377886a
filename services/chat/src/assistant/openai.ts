import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import type { AssistantAnswer, AssistantRequest, Responder } from './responder.js'

export interface OpenAiOptions {
  url: string
  apiKey?: string | undefined
  model: string
  systemPrompt: string
  maxAnswerLength: number
}

// What the responder reads of a chat-completions reply (the first choice and the usage); the rest is ignored.
const Completion = Compile(
  Type.Object({ model: Type.Optional(Type.Unknown()), choices: Type.Array(Type.Unknown()), usage: Type.Optional(Type.Unknown()) })
)
const Choice = Compile(Type.Object({ message: Type.Object({ content: Type.String() }) }))
const Usage = Compile(Type.Object({ prompt_tokens: Type.Number(), completion_tokens: Type.Number() }))

class NoAnswerError extends Error {
  constructor() {
    super('the assistant endpoint sent no answer')
  }
}

/** `https://host/v1` → `https://host/v1/chat/completions`; a full completions URL is kept. */
export function completionsUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '')
  return trimmed.endsWith('/chat/completions') ? trimmed : `${trimmed}/chat/completions`
}

/** An OpenAI-compatible chat-completions endpoint, given the system prompt and the session's recent history. */
export class OpenAiResponder implements Responder {
  readonly name = 'openai'
  readonly needsHistory = true
  private readonly url: string

  constructor(private readonly opts: OpenAiOptions) {
    this.url = completionsUrl(opts.url)
  }

  async respond(request: AssistantRequest, signal: AbortSignal): Promise<AssistantAnswer> {
    const messages = [
      { role: 'system', content: this.opts.systemPrompt },
      ...request.history.map((m) => ({ role: m.sender === 'user' ? 'user' : m.sender, content: m.content }))
    ]
    const res = await fetch(this.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {})
      },
      body: JSON.stringify({ model: this.opts.model, messages }),
      signal
    })
    if (!res.ok) {
      // The status already fails the call; a body that cannot be cancelled is released with the response.
      await res.body?.cancel().catch(() => {})
      throw new Error(`the assistant endpoint answered ${res.status}`)
    }
    const body: unknown = await res.json()
    if (!Completion.Check(body)) throw new NoAnswerError()
    const choice = body.choices[0]
    if (!Choice.Check(choice) || choice.message.content.trim() === '') throw new NoAnswerError()
    const model = typeof body.model === 'string' ? body.model : this.opts.model
    const usage = Usage.Check(body.usage) ? body.usage : null
    return {
      content: choice.message.content.slice(0, this.opts.maxAnswerLength),
      metadata: {
        responder: this.name,
        model,
        ...(usage ? { usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens } } : {})
      }
    }
  }
}
