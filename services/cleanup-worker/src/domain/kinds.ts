import { Value } from 'typebox/value'
import type { Static, TSchema } from 'typebox'
import { ChatCleanupReply, CleanupKinds, CleanupReply, TaskSessionCleanupReply, type CleanupKind } from '@platform/contracts'
import { CleanupAgeNotSupportedError, CleanupAgeRequiredError, UnknownCleanupKindError } from './errors.js'

/** The services that own sessions, by the name their breaker and their URL go under. */
export const Targets = ['sessions', 'task-sessions', 'chat'] as const
export type Target = (typeof Targets)[number]

/** How many sessions a reply says were removed, and how many rows or batches were skipped. */
interface Counts {
  removed: number
  errors: number
}

/** Checks a reply against `schema` and counts it; null when it breaks the contract. */
function reader<S extends TSchema>(schema: S, count: (reply: Static<S>) => Counts): (reply: unknown) => Counts | null {
  return (reply) => (Value.Check(schema, reply) ? count(reply) : null)
}

const removedAndErrors = (r: { removed: number; errors: number }): Counts => ({ removed: r.removed, errors: r.errors })

/** Which service owns each kind, where its cleanup lives, and how its reply is read. */
const Owners: Record<CleanupKind, { target: Target; path: string; read: (reply: unknown) => Counts | null; takesAge: boolean }> = {
  login_sessions: { target: 'sessions', path: '/internal/cleanup', read: reader(CleanupReply, removedAndErrors), takesAge: true },
  named_sessions: { target: 'sessions', path: '/internal/cleanup/named-sessions', read: reader(CleanupReply, removedAndErrors), takesAge: true },
  task_sessions: { target: 'task-sessions', path: '/internal/cleanup', read: reader(TaskSessionCleanupReply, removedAndErrors), takesAge: true },
  // Chat closes what is past its own expiresAt and drops closed sessions after its own retention; it reports no errors.
  chat_sessions: {
    target: 'chat',
    path: '/internal/cleanup',
    read: reader(ChatCleanupReply, (r) => ({ removed: r.expired + r.removedSessions, errors: 0 })),
    takesAge: false
  }
}

export const ownerOf = (kind: CleanupKind): Target => Owners[kind].target

export function isCleanupKind(kind: string): kind is CleanupKind {
  return CleanupKinds.some((k) => k === kind)
}

/** One value per kind; the literal makes a kind added to the contract a compile error here, not a missing key. */
export function byKind<T>(value: (kind: CleanupKind) => T): Record<CleanupKind, T> {
  return {
    login_sessions: value('login_sessions'),
    task_sessions: value('task_sessions'),
    chat_sessions: value('chat_sessions'),
    named_sessions: value('named_sessions')
  }
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

/** Checks a cleanup reply against its contract and reduces it to removed/errors. */
export function summarize(kind: CleanupKind, reply: unknown): RunResult {
  const owner = Owners[kind]
  const counts = owner.read(reply)
  // The sessions contract does not bound these: a negative count is as wrong as a missing one.
  if (!counts || counts.removed < 0 || counts.errors < 0 || typeof reply !== 'object' || reply === null) throw new UnexpectedReplyError(owner.target)
  const details = Object.fromEntries(Object.entries(reply).filter((e): e is [string, number] => typeof e[1] === 'number'))
  return { ...counts, details }
}
