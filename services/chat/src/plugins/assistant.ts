import fp from 'fastify-plugin'
import type CircuitBreaker from 'opossum'
import { Counter, Gauge } from 'prom-client'
import { breakerState, createBreaker, type BreakerOptions } from '@platform/kit'
import type { AssistantAnswer, AssistantRequest, Responder } from '../assistant/responder.js'
import { BuiltinResponder, loadKnowledge } from '../assistant/builtin.js'
import { OpenAiResponder } from '../assistant/openai.js'

export interface AssistantReply extends AssistantAnswer {
  processingMs: number
}

export type FallbackReason = 'timeout' | 'error' | 'circuit_open' | 'shutdown'

export interface AssistantOptions {
  knowledgePath: string
  url?: string | undefined
  apiKey?: string | undefined
  model: string
  systemPrompt: string
  timeoutMs: number
  maxAnswerLength: number
  breaker: { errorPercent: number; volume: number; windowMs: number; resetMs: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    assistant: Assistant
  }
}

const UNAVAILABLE = 'Sorry, the assistant is not available right now. Your message is saved; please try again in a moment.'

export interface AssistantHooks {
  onFallback?: (reason: FallbackReason) => void
  /** Logs the breaker's transitions. */
  log?: BreakerOptions['log']
}

/**
 * Answers user messages through a pluggable responder. A remote responder runs behind a circuit
 * breaker and a timeout; whatever goes wrong, the user gets a fallback answer (metadata.fallback=true):
 * the built-in knowledge answer when one matches, otherwise a short apology.
 */
export class Assistant {
  private readonly breaker: CircuitBreaker<[AssistantRequest], AssistantAnswer> | null
  private readonly stopping = new AbortController()
  private readonly onFallback: (reason: FallbackReason) => void

  constructor(
    readonly responder: Responder,
    private readonly builtin: BuiltinResponder,
    opts: Pick<AssistantOptions, 'timeoutMs' | 'breaker'>,
    hooks: AssistantHooks = {}
  ) {
    this.onFallback = hooks.onFallback ?? (() => {})
    this.breaker =
      responder === builtin
        ? null
        : createBreaker(
            (request: AssistantRequest) => responder.respond(request, AbortSignal.any([this.stopping.signal, AbortSignal.timeout(opts.timeoutMs)])),
            {
              name: 'assistant',
              timeoutMs: opts.timeoutMs,
              errorPercentage: opts.breaker.errorPercent,
              volume: opts.breaker.volume,
              windowMs: opts.breaker.windowMs,
              resetMs: opts.breaker.resetMs,
              ...(hooks.log ? { log: hooks.log } : {})
            }
          )
  }

  get needsHistory(): boolean {
    return this.responder.needsHistory
  }

  /** closed | half_open | open, or disabled when the built-in responder answers alone. */
  get state(): 'disabled' | 'closed' | 'half_open' | 'open' {
    return this.breaker ? breakerState(this.breaker) : 'disabled'
  }

  async reply(request: AssistantRequest): Promise<AssistantReply> {
    const started = performance.now()
    let answer: AssistantAnswer
    if (!this.breaker) {
      answer = await this.responder.respond(request, this.stopping.signal)
    } else {
      try {
        answer = await this.breaker.fire(request)
      } catch (err) {
        answer = this.fallback(request.content, this.reasonOf(err))
      }
    }
    return { ...answer, processingMs: Math.round(performance.now() - started) }
  }

  /** Graceful shutdown: calls in flight end now and fall back, so their answers are persisted before close. */
  abortAll(): void {
    this.stopping.abort()
  }

  shutdown(): void {
    this.abortAll()
    this.breaker?.shutdown()
  }

  private reasonOf(err: unknown): FallbackReason {
    if (this.stopping.signal.aborted) return 'shutdown'
    const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
    const name = typeof err === 'object' && err !== null && 'name' in err ? err.name : undefined
    if (code === 'EOPENBREAKER') return 'circuit_open'
    if (code === 'ETIMEDOUT' || name === 'TimeoutError') return 'timeout'
    return 'error'
  }

  private fallback(content: string, reason: FallbackReason): AssistantAnswer {
    this.onFallback(reason)
    const hit = this.builtin.match(content)
    return {
      content: hit ? hit.answer : UNAVAILABLE,
      metadata: { responder: 'fallback', fallback: true, reason, ...(hit ? { intent: hit.id } : {}) }
    }
  }
}

export const assistantPlugin = fp<AssistantOptions>(
  async (fastify, opts) => {
    const builtin = new BuiltinResponder(loadKnowledge(opts.knowledgePath))
    const responder: Responder = opts.url
      ? new OpenAiResponder({
          url: opts.url,
          apiKey: opts.apiKey,
          model: opts.model,
          systemPrompt: opts.systemPrompt,
          maxAnswerLength: opts.maxAnswerLength
        })
      : builtin
    const fallbacks = new Counter({
      name: 'chat_assistant_fallbacks_total',
      help: 'Assistant replies that were fallback answers, by reason',
      labelNames: ['reason'] as const,
      registers: [fastify.metrics]
    })
    const assistant = new Assistant(responder, builtin, opts, { onFallback: (reason) => fallbacks.inc({ reason }), log: fastify.log })
    new Gauge({
      name: 'chat_assistant_breaker_open',
      help: '1 while the assistant breaker is open (0.5 half-open)',
      registers: [fastify.metrics],
      collect() {
        this.set(assistant.state === 'open' ? 1 : assistant.state === 'half_open' ? 0.5 : 0)
      }
    })
    fastify.readiness.add('assistant', {
      required: false,
      check: () => (assistant.state === 'disabled' ? 'disabled' : assistant.state === 'open' ? 'down' : 'up')
    })
    fastify.decorate('assistant', assistant)
    fastify.addHook('onClose', async () => assistant.shutdown())
  },
  { name: 'chat-assistant', dependencies: ['platform-metrics', 'platform-health'] }
)
