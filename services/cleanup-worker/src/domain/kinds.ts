import { Value } from 'typebox/value'
import type { TSchema } from 'typebox'
import {
  ChatCleanupReply,
  CleanupKinds,
  CleanupReply,
  TaskSessionCleanupReply,
  type CleanupKind
} from '@platform/contracts'
import { CleanupAgeNotSupportedError, CleanupAgeRequiredError, UnknownCleanupKindError } from './errors.js'

/** The services that own sessions, by the name their breaker and their URL go under. */
export const Targets = ['sessions', 'task-sessions', 'chat'] as const
export type Target = (typeof Targets)[number]

/** Which service owns each kind, where its cleanup lives, and what its reply looks like. */
const Owners: Record<CleanupKind, { target: Target; path: string; reply: TSchema; takesAge: boolean }> = {
  login_sessions: { target: 'sessions', path: '/internal/cleanup', reply: CleanupReply, takesAge: true },
  named_sessions: { target: 'sessions', path: '/internal/cleanup/named-sessions', reply: CleanupReply, takesAge: true },
  task_sessions: { target: 'task-sessions', path: '/internal/cleanup', reply: TaskSessionCleanupReply, takesAge: true },
  // Chat closes what is past its own expiresAt and drops closed sessions after its own retention.
  chat_sessions: { target: 'chat', path: '/internal/cleanup', reply: ChatCleanupReply, takesAge: false }
}

export const ownerOf = (kind: CleanupKind): Target => Owners[kind].target

export function isCleanupKind(kind: string): kind is CleanupKind {
  return (CleanupKinds as readonly string[]).includes(kind)
}

export interface CallPlan {
  target: Target
  path: string
  body: { olderThanSeconds?: number; batchSize: number }
}

export interface PlanInput {
  olderThanSeconds?: number | undefined
  batchSize: number
  /** NAMED_SESSION_MAX_AGE_DAYS in seconds, when set. */
  namedMaxAgeSeconds?: number | undefined
}

/** The call one run of `kind` makes. Named sessions always get an explicit age (the configured one by default). */
export function planFor(kind: CleanupKind, input: PlanInput): CallPlan {
  const owner = Owners[kind]
  const age = kind === 'named_sessions' ? (input.olderThanSeconds ?? input.namedMaxAgeSeconds) : input.olderThanSeconds
  if (kind === 'named_sessions' && age === undefined) throw new CleanupAgeRequiredError()
  if (!owner.takesAge && age !== undefined) throw new CleanupAgeNotSupportedError(kind)
  return {
    target: owner.target,
    path: owner.path,
    body: { ...(age !== undefined ? { olderThanSeconds: age } : {}), batchSize: input.batchSize }
  }
}

/** What an admin's run-now request may ask: refuses unknown kinds and ages a kind cannot take. */
export function checkRunRequest(kind: string, olderThanSeconds: number | undefined, namedMaxAgeSeconds: number | undefined): CleanupKind {
  if (!isCleanupKind(kind)) throw new UnknownCleanupKindError(kind)
  planFor(kind, { olderThanSeconds, batchSize: 1, namedMaxAgeSeconds })
  return kind
}

export interface RunResult {
  removed: number
  errors: number
  /** The reply's numbers as the service sent them (batches, durationMs, …). */
  details: Record<string, number>
}

export class UnexpectedReplyError extends Error {
  constructor(readonly target: Target) {
    super(`${target} answered the cleanup with an unexpected body`)
    this.name = 'UnexpectedReplyError'
  }
}

/** Checks a cleanup reply against its contract and reduces it to removed/errors (chat reports no errors). */
export function summarize(kind: CleanupKind, reply: unknown): RunResult {
  const owner = Owners[kind]
  if (!Value.Check(owner.reply, reply)) throw new UnexpectedReplyError(owner.target)
  const numbers = Object.fromEntries(
    Object.entries(reply as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number')
  )
  const result =
    kind === 'chat_sessions'
      ? { removed: (reply as ChatCleanupReply).expired + (reply as ChatCleanupReply).removedSessions, errors: 0, details: numbers }
      : { removed: (reply as CleanupReply).removed, errors: (reply as CleanupReply).errors, details: numbers }
  // The sessions contract does not bound these: a negative count is as wrong as a missing one.
  if (result.removed < 0 || result.errors < 0) throw new UnexpectedReplyError(owner.target)
  return result
}
