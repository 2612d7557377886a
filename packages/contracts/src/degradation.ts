/**
 * Degraded replies (docs/architecture.md, Failure behaviour): `X-Degradation-Mode` names each mode a reply was
 * served in, `X-Degradation-Reason` says the same in one short sentence per mode. Several modes are
 * joined with ", ", their reasons with "; " in the same order.
 */
export const DEGRADATION_MODE_HEADER = 'x-degradation-mode'
export const DEGRADATION_REASON_HEADER = 'x-degradation-reason'

/** Every mode a service or the gateway may set, with its reason: the one table. Reasons are ASCII and never contain ";". */
export const DegradationReasons = {
  rate_limit_local: 'Redis unavailable: limits counted per instance',
  cache_unavailable: 'Cache unavailable: answered from the database',
  sessions_unavailable: 'sessions service unavailable: circuit open',
  task_sessions_unavailable: 'task-sessions service unavailable: circuit open',
  chat_unavailable: 'chat service unavailable: circuit open',
  cleanup_worker_unavailable: 'cleanup-worker service unavailable: circuit open'
} as const

export type DegradationMode = keyof typeof DegradationReasons

/** The reason of a mode; a mode missing from the table (a newer service's) still gets a sentence. */
export function degradationReason(mode: string): string {
  return (DegradationReasons as Record<string, string>)[mode] ?? `Degraded: ${mode}`
}

/** What the helpers need of a reply; Fastify's reply fits. */
export interface DegradationTarget {
  getHeader(name: string): string | number | string[] | undefined
  header(name: string, value: string): unknown
}

/** Adds one mode and its reason to a reply, after those already there; a mode already listed is not repeated. */
export function addDegradation(reply: DegradationTarget, mode: string, reason: string = degradationReason(mode)): void {
  const modes = reply.getHeader(DEGRADATION_MODE_HEADER)
  if (modes === undefined) {
    reply.header(DEGRADATION_MODE_HEADER, mode)
    reply.header(DEGRADATION_REASON_HEADER, reason)
    return
  }
  if (splitModes(String(modes)).includes(mode)) return
  const reasons = reply.getHeader(DEGRADATION_REASON_HEADER)
  reply.header(DEGRADATION_MODE_HEADER, `${String(modes)}, ${mode}`)
  reply.header(DEGRADATION_REASON_HEADER, reasons === undefined ? reason : `${String(reasons)}; ${reason}`)
}

/**
 * Joins another reply's headers (a relayed upstream answer) to this reply's own: its modes AND their
 * reasons, in its order. Its reasons are kept when they pair up with its modes, else looked up.
 */
export function joinDegradation(reply: DegradationTarget, modes: string, reasons?: string): void {
  const list = splitModes(modes)
  const theirs = reasons === undefined ? [] : reasons.split(/;\s*/)
  const paired = theirs.length === list.length
  list.forEach((mode, i) => addDegradation(reply, mode, paired ? theirs[i] : undefined))
}

/** Both headers for a list of modes, for replies written without a reply object (WebSocket upgrades). */
export function degradationHeaders(modes: readonly string[]): Record<string, string> {
  if (modes.length === 0) return {}
  return {
    [DEGRADATION_MODE_HEADER]: modes.join(', '),
    [DEGRADATION_REASON_HEADER]: modes.map(degradationReason).join('; ')
  }
}

function splitModes(value: string): string[] {
  return value
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean)
}
