import { Type, type Static, type TSchema } from 'typebox'

/** CloudEvents 1.0 JSON envelope; `type` equals the NATS subject (before any namespace prefix). */
export const EventEnvelope = <T extends TSchema>(type: string, data: T) =>
  Type.Object(
    {
      specversion: Type.Literal('1.0'),
      id: Type.String({ format: 'uuid' }),
      type: Type.Literal(type),
      source: Type.String({ minLength: 1 }),
      time: Type.String({ format: 'date-time' }),
      datacontenttype: Type.Literal('application/json'),
      traceparent: Type.Optional(Type.String()),
      data
    },
    { additionalProperties: false }
  )

/** An envelope whose `type` and `data` are not yet known: what a consumer checks first. */
export const AnyEventEnvelope = Type.Object({
  specversion: Type.Literal('1.0'),
  id: Type.String({ format: 'uuid' }),
  type: Type.String({ minLength: 1 }),
  source: Type.String({ minLength: 1 }),
  time: Type.String({ format: 'date-time' }),
  datacontenttype: Type.Literal('application/json'),
  traceparent: Type.Optional(Type.String()),
  data: Type.Unknown()
})
export type AnyEventEnvelope = Static<typeof AnyEventEnvelope>

/** JetStream streams and the subjects each captures. One owner publishes into each. */
export const Streams = {
  sessions: { name: 'SESSIONS', subjects: ['sessions.>'] },
  tasks: { name: 'TASKS', subjects: ['tasks.>'] },
  chat: { name: 'CHAT_EVENTS', subjects: ['chat.events.>'] },
  cleanup: { name: 'CLEANUP', subjects: ['cleanup.>'] },
  deadLetter: { name: 'DEAD_LETTER', subjects: ['dlq.>'] }
} as const
export type StreamKey = keyof typeof Streams
