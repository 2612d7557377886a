import t from 'tap'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import {
  ChatErrorFrame,
  ChatMessageFrame,
  ChatSessionClosedFrame,
  ChatSessionFrame,
  ChatTypingServerFrame,
  ChatWelcomeFrame,
  type ChatServerFrame
} from '@platform/contracts'
import { build, clients, shared, type Client, type Frame } from './helper.js'

/** Every frame type the server sends, with its schema in the contract. */
const serverFrames = {
  welcome: ChatWelcomeFrame,
  session: ChatSessionFrame,
  message: ChatMessageFrame,
  typing: ChatTypingServerFrame,
  session_closed: ChatSessionClosedFrame,
  error: ChatErrorFrame
} satisfies Record<ChatServerFrame['type'], TSchema>

/** The schema with every object that lists its properties closed: a field the contract does not name fails. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed)
  if (typeof schema !== 'object' || schema === null) return schema
  const copy = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, closed(value)]))
  return 'properties' in copy && !('additionalProperties' in copy) ? { ...copy, additionalProperties: false } : copy
}

function exactValidator(schema: TSchema) {
  const strict = closed(schema)
  if (typeof strict !== 'object' || strict === null) throw new TypeError('a schema is an object')
  return Compile(strict)
}

const exact = new Map(Object.entries(serverFrames).map(([type, schema]) => [type, exactValidator(schema)]))

/** The contract violations of one frame: none when it matches its type's schema exactly. */
function violations(frame: Frame): string[] {
  const validator = typeof frame.type === 'string' ? exact.get(frame.type) : undefined
  if (!validator) return [`no server frame has type ${JSON.stringify(frame.type)}`]
  return validator.Errors(frame).map((e) => `${e.instancePath || '/'} ${e.message}`)
}

/** The first frame of each type seen in the session below: the valid frames the second test breaks. */
const captured = new Map<string, Frame>()

t.test('every frame the server sends, in a real session over two instances, matches its contract exactly', async (t) => {
  const s = await shared(t)
  const env = { RATE_LIMIT_MESSAGES_PER_MINUTE: '2' }
  const one = await build(t, env, s)
  const two = await build(t, env, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  const anonymous = await open(one.wsUrl, null)

  const { chatSessionId } = await a.init()
  const mine = await a.request({ type: 'message', content: 'how do I rate a chat?', ref: 'm1' })
  await a.next((f) => f.type === 'message' && f.sender === 'assistant')
  // b joins on the other instance: history in its session frame, then live frames through NATS.
  t.equal((await b.init(chatSessionId)).history.length, 2)
  a.send({ type: 'typing', isTyping: true })
  await b.next('typing')
  await b.request({ type: 'message', content: 'from the other instance' })
  await a.next((f) => f.type === 'message' && f.content === 'from the other instance')
  t.equal((await a.request({ type: 'hug' })).code, 'UNKNOWN_TYPE')
  t.equal((await a.request({ type: 'message', content: 'one too many' })).code, 'RATE_LIMITED')
  t.equal((await a.request({ type: 'session_close' })).type, 'session_closed')
  t.equal((await b.next('session_closed')).reason, 'user')
  t.equal((await (await open(two.wsUrl, 'u1')).init(chatSessionId, mine.id)).recovered, true)
  await anonymous.init()

  const all: Client[] = [a, b, anonymous]
  const frames = all.flatMap((c) => c.received)
  for (const frame of frames) {
    t.strictSame(violations(frame), [], `${frame.type} frame: ${JSON.stringify(frame).slice(0, 200)}`)
    if (typeof frame.type === 'string' && !captured.has(frame.type)) captured.set(frame.type, frame)
  }
  t.strictSame([...captured.keys()].sort(), Object.keys(serverFrames).sort(), 'every server frame type was sent')
  t.ok(
    frames.some((f) => f.type === 'error' && f.retryAfterMs !== undefined),
    'an error frame with retryAfterMs'
  )
  t.ok(
    frames.some((f) => f.type === 'message' && f.ref !== undefined),
    'a message frame with its ref'
  )
})

/** A value of another type than `value`, whatever the field's schema allows. */
const wrongType = (value: unknown): unknown => (typeof value === 'object' && value !== null ? 'wrong' : { wrong: true })

t.test('the same check rejects a frame with a missing, an extra or a wrong-typed field', async (t) => {
  t.equal(captured.size, Object.keys(serverFrames).length, 'a frame of each type from the session above')
  for (const [type, frame] of captured) {
    t.strictSame(violations(frame), [], `${type}: the frame as sent passes`)
    for (const key of Object.keys(frame)) {
      const { [key]: value, ...without } = frame
      const optional = key === 'ref' || key === 'retryAfterMs'
      if (!optional) t.not(violations(without).length, 0, `${type} without ${key} fails`)
      t.not(violations({ ...frame, [key]: wrongType(value) }).length, 0, `${type} with a wrong-typed ${key} fails`)
    }
    t.not(violations({ ...frame, unexpected: 1 }).length, 0, `${type} with an extra field fails`)
  }
  const welcome = captured.get('welcome') ?? {}
  t.not(violations({ ...welcome, user: { ...welcome.user, role: 'admin' } }).length, 0, 'an extra field inside welcome.user fails')
  t.not(violations({ ...welcome, limits: { ...welcome.limits, maxRooms: 5 } }).length, 0, 'an extra field inside welcome.limits fails')
  const session = captured.get('session') ?? {}
  const [first] = session.history ?? []
  t.not(violations({ ...session, history: [{ ...first, likes: 3 }] }).length, 0, 'an extra field in a history message fails')
  t.not(violations({ ...session, history: [{ ...first, seq: '1' }] }).length, 0, 'a wrong-typed field in a history message fails')
  t.not(violations({ ...captured.get('message'), createdAt: 'yesterday' }).length, 0, 'a date-time that is not one fails')
  t.strictSame(violations({ type: 'mystery' }), ['no server frame has type "mystery"'])
})
