import type { AssistantAnswer, AssistantRequest, Responder } from './responder.js'

export interface OpenAiOptions {
  url: string
  apiKey?: string | undefined
  model: string
  systemPrompt: string
  maxAnswerLength: number
}

interface Completion {
  model?: unknown
  choices?: Array<{ message?: { content?: unknown }; finish_reason?: unknown }>
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown }
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
      await res.body?.cancel().catch(() => {})
      throw new Error(`the assistant endpoint answered ${res.status}`)
    }
    const body = (await res.json()) as Completion
    const content = body.choices?.[0]?.message?.content
    if (typeof content !== 'string' || content.trim() === '') throw new Error('the assistant endpoint sent no answer')
    const usage = body.usage
    return {
      content: content.slice(0, this.opts.maxAnswerLength),
      metadata: {
        responder: this.name,
        model: typeof body.model === 'string' ? body.model : this.opts.model,
        ...(usage && typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number'
          ? { usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens } }
          : {})
      }
    }
  }
}
