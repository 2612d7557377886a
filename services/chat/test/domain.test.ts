import t from 'tap'
import { Sequencer } from '../src/domain/sequencer.js'
import { SeqRanges } from '../src/domain/seq-ranges.js'
import { mergePatch } from '../src/domain/merge-patch.js'
import { contentProblem } from '../src/domain/content.js'
import { parseClientFrame } from '../src/domain/frames.js'
import { takeFromWindow } from '../src/domain/rate-window.js'
import { accessTo, anonymousIdentity, identityOf, selectProtocol, tokenFromProtocols } from '../src/domain/identity.js'
import { BuiltinResponder, loadKnowledge, normalize } from '../src/assistant/builtin.js'
import { completionsUrl } from '../src/assistant/openai.js'
import { DEFAULT_KNOWLEDGE_PATH } from '../src/config.js'

const item = (seq: number) => ({ seq })
const seqs = (items: Array<{ seq: number }>) => items.map((i) => i.seq)

t.test('seq ranges keep one range per session covering every seq added', async (t) => {
  const r = new SeqRanges()
  r.add('s1', 5)
  r.add('s1', 7)
  r.add('s1', 3)
  r.add('s2', 1)
  const other = new SeqRanges()
  other.addRange('s2', { after: 4, upTo: 9 })
  other.add('s3', 2)
  r.merge(other)
  t.equal(r.size, 3)
  t.strictSame(Object.fromEntries(r.take()), {
    s1: { after: 2, upTo: 7 },
    s2: { after: 0, upTo: 9 },
    s3: { after: 1, upTo: 2 }
  })
  t.equal(r.size, 0, 'take empties it')
  t.strictSame(Object.fromEntries(other.take()), { s2: { after: 4, upTo: 9 }, s3: { after: 1, upTo: 2 } }, 'merge leaves the other as it was')
})

t.test('the sequencer delivers in order, holds early ones and drops duplicates', async (t) => {
  const s = new Sequencer<{ seq: number }>()
  t.same(seqs(s.accept(item(3))), [], 'nothing before the position is known')
  t.same(seqs(s.init(2)), [3], 'init releases what follows the position')
  t.same(seqs(s.accept(item(3))), [], 'a duplicate is dropped')
  t.same(seqs(s.accept(item(5))), [], 'an early one waits')
  t.equal(s.hasGap, true)
  t.equal(s.highest, 5)
  t.same(seqs(s.accept(item(5))), [], 'a duplicate of a waiting one is dropped')
  t.same(seqs(s.accept(item(4))), [4, 5], 'the missing one releases the waiting one')
  t.equal(s.hasGap, false)
  t.same(seqs(s.accept(item(7))), [])
  t.same(seqs(s.skipGap()), [7], 'skipping a gap that does not exist releases the rest')
  t.equal(s.last, 7)
  t.same(seqs(s.init(100)), [], 'init happens once')
})

t.test('merge patch follows RFC 7386', async (t) => {
  t.same(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { a: null, b: { c: null, x: 1 }, e: [2], f: 'new' }), {
    b: { d: 3, x: 1 },
    e: [2],
    f: 'new'
  })
  t.same(mergePatch({ a: 'text' }, { a: { b: 1 } }), { a: { b: 1 } })
})

t.test('content is refused when blank or too long (in characters, not UTF-16 units)', async (t) => {
  t.same(contentProblem('   \n', 10), { code: 'EMPTY_MESSAGE', message: 'The message is empty: write something first' })
  t.equal(contentProblem('😀'.repeat(10), 10), null, 'ten emoji are ten characters')
  t.same(contentProblem('x'.repeat(11), 10), {
    code: 'MESSAGE_TOO_LONG',
    message: 'The message has 11 characters; at most 10 are allowed'
  })
})

t.test('client frames are parsed against the contract', async (t) => {
  const p = (v: unknown, binary = false) => parseClientFrame(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), binary)
  t.same(p({ type: 'message', content: 'hi', ref: 7 }), { ok: true, frame: { type: 'message', content: 'hi', ref: 7 } })
  t.same(p('{nope'), { ok: false, code: 'INVALID_FRAME', message: 'The frame is not valid JSON' })
  t.same(p([1]), { ok: false, code: 'INVALID_FRAME', message: 'A frame is a JSON object with a "type"' })
  t.same(p({ ref: 'a' }), { ok: false, code: 'INVALID_FRAME', message: 'The frame has no "type" string', ref: 'a' })
  t.same(p({ type: 'dance', ref: 'a' }), {
    ok: false,
    code: 'UNKNOWN_TYPE',
    message: 'Unknown frame type "dance"; use one of session_init, message, typing, session_close',
    ref: 'a'
  })
  t.same(p({ type: 'typing', isTyping: 'yes', ref: 'b' }), {
    ok: false,
    code: 'INVALID_FRAME',
    message: 'Invalid typing frame: isTyping must be boolean',
    ref: 'b'
  })
  t.same(p({ type: 'message', content: 'x', colour: 'red' }), {
    ok: false,
    code: 'INVALID_FRAME',
    message: 'Invalid message frame: unknown field "colour"'
  })
  t.same(p({ type: 'session_init', chatSessionId: 'nope' }).ok, false)
  t.same(p({ type: 'session_init', lastMessageId: '0' }).ok, false, 'ids start at 1')
  t.same(p({ type: 'message', content: 'x' }, true), { ok: false, code: 'INVALID_FRAME', message: 'Send JSON text frames, not binary ones' })
  t.same(
    p({ type: 'message', content: 'x', ref: { a: 1 } }),
    {
      ok: false,
      code: 'INVALID_FRAME',
      message: 'Invalid message frame: ref must be string'
    },
    'an unusable ref is not echoed'
  )
})

t.test('a fixed window counts from its first hit', async (t) => {
  const w = { count: 0, resetAt: 0 }
  t.same(takeFromWindow(w, 2, 1000, 10_000), { allowed: true, retryAfterMs: 0 })
  t.same(takeFromWindow(w, 2, 1000, 10_100), { allowed: true, retryAfterMs: 0 })
  t.same(takeFromWindow(w, 2, 1000, 10_400), { allowed: false, retryAfterMs: 600 })
  t.same(takeFromWindow(w, 2, 1000, 11_000), { allowed: true, retryAfterMs: 0 }, 'a new window')
})

t.test('identities, access and subprotocols', async (t) => {
  const client = identityOf({ sub: 'u1', sid: 'L1', roles: ['user'], exp: 100 })
  t.same(client, { id: 'u1', type: 'client', anonymous: false, admin: false, loginSessionId: 'L1', expiresAt: 100_000 })
  t.equal(identityOf({ sub: 'p', roles: ['user', 'provider'] }).type, 'provider')
  const admin = identityOf({ sub: 'a', roles: ['admin'] })
  const anon = anonymousIdentity('c1')
  t.same(anon, { id: 'anon-c1', type: 'anonymous', anonymous: true, admin: false, loginSessionId: undefined, expiresAt: 0 })
  t.equal(accessTo({ userId: 'u1' }, client), 'write')
  t.equal(accessTo({ userId: 'u2' }, client), 'none')
  t.equal(accessTo({ userId: 'u2' }, admin), 'read')
  t.equal(accessTo({ userId: 'u2' }, anon), 'none')
  t.equal(accessTo({ userId: null }, anon), 'write', 'an anonymous session is joined with its id')
  t.equal(tokenFromProtocols('chat, aaa.bbb.ccc'), 'aaa.bbb.ccc')
  t.equal(tokenFromProtocols('chat'), undefined)
  t.equal(selectProtocol(new Set(['aaa.bbb.ccc', 'chat'])), 'chat')
  t.equal(selectProtocol(new Set(['aaa.bbb.ccc'])), 'aaa.bbb.ccc')
  t.equal(completionsUrl('http://h/v1/'), 'http://h/v1/chat/completions')
  t.equal(completionsUrl('http://h/v1/chat/completions'), 'http://h/v1/chat/completions')
})

t.test('the built-in responder greets, answers from knowledge, or says it did not understand', async (t) => {
  const knowledge = loadKnowledge(DEFAULT_KNOWLEDGE_PATH)
  const r = new BuiltinResponder(knowledge)
  t.equal(normalize('Olá, Bom-DIA!'), ' ola bom dia ')
  t.same(r.answer('Bom dia!'), {
    content: knowledge.greeting,
    metadata: { responder: 'builtin', intent: 'greeting', understood: true }
  })
  t.same(
    r.answer('Hi! how do I RATE this chat?'),
    {
      content: knowledge.entries.find((e) => e.id === 'rating')!.answer,
      metadata: { responder: 'builtin', intent: 'rating', understood: true }
    },
    'knowledge wins over a greeting'
  )
  t.same(r.answer('purple elephants'), {
    content: 'I did not understand your question. Try asking about sessions, chat history, rating a chat or signing in.',
    metadata: { responder: 'builtin', intent: 'not_understood', understood: false }
  })
  t.throws(() => loadKnowledge('/nonexistent/k.json'), /ASSISTANT_KNOWLEDGE_PATH: cannot read \/nonexistent\/k\.json/)
})
