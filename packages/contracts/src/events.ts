import { Type, type Static, type TSchema } from 'typebox'

/**
 * The CloudEvents 1.0 JSON envelope this platform publishes (`createEvent`): a UUID id, `time` and
 * `datacontenttype` always set; `type` equals the NATS subject (before any namespace prefix).
 */
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

/**
 * A structured-mode CloudEvents 1.0 event as consumers accept it from any producer: any non-empty id
 * (unique per source), optional attributes absent or null, JSON data, extension attributes (names
 * 1-20 of a-z0-9) allowed and ignored. The same event may come in binary mode (`ce-` headers):
 * docs/events.md. The kit's decoder checks what a schema cannot (URI-reference, RFC 3339, JSON media types).
 */
export const ReceivedEventEnvelope = <T extends TSchema>(type: string, data: T) =>
  Type.Object(
    {
      specversion: Type.Literal('1.0'),
      id: Type.String({ minLength: 1 }),
      type: Type.Literal(type),
      source: Type.String({ minLength: 1, description: 'URI-reference' }),
      time: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])),
      datacontenttype: Type.Optional(
        Type.Union([Type.String({ description: 'application/json (the default) or another JSON media type' }), Type.Null()])
      ),
      dataschema: Type.Optional(Type.Union([Type.String({ description: 'absolute URI' }), Type.Null()])),
      subject: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()])),
      data
    },
    { additionalProperties: true }
  )

/**
 * An event as a handler receives it, whatever its content mode: the normalised envelope (`time`, when
 * present, as UTC ISO-8601 with milliseconds; extension attributes dropped but `traceparent`).
 */
export const AnyEventEnvelope = Type.Object({
  specversion: Type.Literal('1.0'),
  id: Type.String({ minLength: 1 }),
  type: Type.String({ minLength: 1 }),
  source: Type.String({ minLength: 1 }),
  time: Type.Optional(Type.String({ format: 'date-time' })),
  datacontenttype: Type.Optional(Type.String({ minLength: 1 })),
  dataschema: Type.Optional(Type.String({ minLength: 1 })),
  subject: Type.Optional(Type.String({ minLength: 1 })),
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
