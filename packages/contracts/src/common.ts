import { Type, type Static } from 'typebox'

/** Cursor paging shared by every list route: `limit` 1..100, an opaque `cursor` from `nextCursor`. */
export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
  },
  { additionalProperties: false }
)
export type PageQuery = Static<typeof PageQuery>

/** User ids come from the JWT `sub`: printable, no whitespace, at most 128 characters. */
export const UserId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' })

export const Roles = ['user', 'admin', 'service'] as const
export type Role = (typeof Roles)[number]

export const DependencyState = Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('disabled')])
export type DependencyState = Static<typeof DependencyState>

/**
 * A service's GET /health: liveness (always 200 while the process answers) plus each dependency's
 * state from the readiness registry; `degraded` while any of them (NATS included) is down.
 */
export const HealthReply = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]),
  uptime: Type.Number({ description: 'Seconds since the process started' }),
  timestamp: Type.String({ format: 'date-time' }),
  checks: Type.Record(Type.String(), DependencyState)
})
export type HealthReply = Static<typeof HealthReply>

export const ReadyReply = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('degraded'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), DependencyState)
})
export type ReadyReply = Static<typeof ReadyReply>
