import { readFileSync } from 'node:fs'
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import type { AssistantAnswer, AssistantRequest, Responder } from './responder.js'

export const Knowledge = Type.Object({
  greeting: Type.String({ minLength: 1 }),
  notUnderstood: Type.String({ minLength: 1 }),
  greetings: Type.Array(Type.String({ minLength: 1 })),
  entries: Type.Array(
    Type.Object({
      id: Type.String({ minLength: 1 }),
      keywords: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
      answer: Type.String({ minLength: 1 })
    })
  )
})
export type Knowledge = Static<typeof Knowledge>

/** Lower case, accents removed, words separated by single spaces, padded so phrases match whole words. */
export function normalize(text: string): string {
  const words = text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean)
  return ` ${words.join(' ')} `
}

/** Reads and checks a knowledge file; a bad one stops the service at boot, naming the file. */
export function loadKnowledge(path: string): Knowledge {
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new Error(`ASSISTANT_KNOWLEDGE_PATH: cannot read ${path}: ${reason}`, { cause: err })
  }
  if (!Value.Check(Knowledge, value)) {
    const first = [...Value.Errors(Knowledge, value)][0]
    throw new Error(`ASSISTANT_KNOWLEDGE_PATH: ${path} is not a knowledge file (${first?.instancePath} ${first?.message})`)
  }
  return value
}

/**
 * The offline responder: the best-matching knowledge entry (most keywords found), else a greeting
 * when the message greets, else a clear "I did not understand". Deterministic.
 */
export class BuiltinResponder implements Responder {
  readonly name = 'builtin'
  readonly needsHistory = false
  private readonly entries: Array<{ id: string; keywords: string[]; answer: string }>
  private readonly greetings: string[]

  constructor(private readonly knowledge: Knowledge) {
    this.entries = knowledge.entries.map((e) => ({ ...e, keywords: e.keywords.map(normalize) }))
    this.greetings = knowledge.greetings.map(normalize)
  }

  /** The knowledge entry that matches best, if any. */
  match(content: string): { id: string; answer: string } | null {
    const text = normalize(content)
    let best: { id: string; answer: string; score: number } | null = null
    for (const e of this.entries) {
      const score = e.keywords.reduce((n, k) => (text.includes(k) ? n + k.split(' ').length : n), 0)
      if (score > 0 && (!best || score > best.score)) best = { id: e.id, answer: e.answer, score }
    }
    return best
  }

  answer(content: string): AssistantAnswer {
    const hit = this.match(content)
    if (hit) return { content: hit.answer, metadata: { responder: this.name, intent: hit.id, understood: true } }
    const text = normalize(content)
    if (this.greetings.some((g) => text.includes(g))) {
      return { content: this.knowledge.greeting, metadata: { responder: this.name, intent: 'greeting', understood: true } }
    }
    return { content: this.knowledge.notUnderstood, metadata: { responder: this.name, intent: 'not_understood', understood: false } }
  }

  async respond(request: AssistantRequest): Promise<AssistantAnswer> {
    return this.answer(request.content)
  }
}
