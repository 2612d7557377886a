import { Type, type Static } from 'typebox'

/** The kinds of session the cleanup worker expires, each owned by one service. */
export const CleanupKinds = ['login_sessions', 'task_sessions', 'chat_sessions', 'named_sessions'] as const
export type CleanupKind = (typeof CleanupKinds)[number]

/** One kind's figures, as its owning service reports them on GET /internal/cleanup/stats. */
export const CleanupKindStats = Type.Object({
  /** Sessions currently live. */
  active: Type.Integer({ minimum: 0 }),
  /** Sessions the next run would end or remove. */
  expired: Type.Integer({ minimum: 0 }),
  /** Mean lifetime of finished sessions, in seconds (0 when none finished yet). */
  averageSessionDurationSeconds: Type.Number({ minimum: 0 })
})
export type CleanupKindStats = Static<typeof CleanupKindStats>

/** GET /internal/cleanup/stats (service role): the kinds a service owns → their figures. */
export const CleanupStatsReply = Type.Record(Type.String(), CleanupKindStats)
export type CleanupStatsReply = Static<typeof CleanupStatsReply>
