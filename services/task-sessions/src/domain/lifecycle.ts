import { Compile } from 'typebox/compile'
import { ScenarioSavedData, TaskLifecycleData, TaskSubjects, type TaskSessionStatus, type TaskTypeName } from '@platform/contracts'

/**
 * The task-session rules, with no I/O. A session's state is a function of the facts known about
 * its task (created, how it finished, scenario saves of its short id), whatever order they arrived
 * in: that is what makes duplicates, redeliveries and out-of-order events end in the same state.
 */

export const SCENARIO = 'scenario_generation'
export const SCRAPING = 'scraping'

/** How a task ended; `removed` when its session was deleted by hand. */
export type Outcome = 'completed' | 'failed' | 'cancelled' | 'removed'
export type RemovalReason = 'completed' | 'failed' | 'cancelled' | 'scenario_saved' | 'deleted'

/** A lifecycle event, already validated against its contract, with a known time (see ReceivedTaskEvent). */
export interface TaskEventInput {
  type: string
  time: string
  data: unknown
}

/**
 * An event as received: other producers may leave `time` out. Such an event takes the time it was
 * first received, remembered per (source, id), so a duplicate in any content mode states the same facts.
 */
export interface ReceivedTaskEvent {
  source: string
  id: string
  type: string
  time?: string
  data: unknown
}

export interface CreatedFact {
  taskId: string
  shortId: string
  taskType: TaskTypeName
  userId: string | null
  createdAt: Date
}

export interface FinishedFact {
  taskId: string
  taskType: TaskTypeName
  outcome: Exclude<Outcome, 'removed'>
}

export interface BatchFacts {
  /** tasks.created that may have a session (a short id, not scraping), first one per task. */
  creates: Map<string, CreatedFact>
  /** The first finishing event per task. */
  finishes: Map<string, FinishedFact>
  /** Latest tasks.scenario.saved time per short id. */
  saves: Map<string, Date>
  /** Every task id the batch is about. */
  taskIds: string[]
  /** Sorted lock keys: `t:<taskId>` for every task, `s:<shortId>` where scenario sessions may change. */
  lockKeys: string[]
}

const OUTCOME_BY_TYPE: Record<string, FinishedFact['outcome']> = {
  [TaskSubjects.completed]: 'completed',
  [TaskSubjects.failed]: 'failed',
  [TaskSubjects.cancelled]: 'cancelled'
}

// The consumer and the HTTP intake have checked `data` with these same compiled schemas, so no event
// reaching the rules fails them: here they only give `data` its type.
const isLifecycleData = Compile(TaskLifecycleData)
const isScenarioSavedData = Compile(ScenarioSavedData)

/** Reduces a batch of events (in stream order) to the facts they state; duplicates collapse. */
export function collectFacts(events: TaskEventInput[]): BatchFacts {
  const creates = new Map<string, CreatedFact>()
  const finishes = new Map<string, FinishedFact>()
  const saves = new Map<string, Date>()
  const tasks = new Set<string>()
  const locks = new Set<string>()
  for (const e of events) {
    if (e.type === TaskSubjects.scenarioSaved) {
      if (!isScenarioSavedData.Check(e.data)) continue
      const { shortId } = e.data
      const at = new Date(e.time)
      const known = saves.get(shortId)
      if (!known || known < at) saves.set(shortId, at)
      locks.add(`s:${shortId}`)
      continue
    }
    const d = e.data
    if (!isLifecycleData.Check(d)) continue
    const outcome = OUTCOME_BY_TYPE[e.type]
    if (outcome) {
      if (!finishes.has(d.taskId)) finishes.set(d.taskId, { taskId: d.taskId, taskType: d.taskType, outcome })
    } else if (e.type === TaskSubjects.created) {
      if (!d.shortId || d.taskType === SCRAPING) continue
      if (!creates.has(d.taskId)) {
        creates.set(d.taskId, {
          taskId: d.taskId,
          shortId: d.shortId,
          taskType: d.taskType,
          userId: d.userId ?? null,
          createdAt: new Date(e.time)
        })
      }
    } else continue
    tasks.add(d.taskId)
    locks.add(`t:${d.taskId}`)
    if (d.taskType === SCENARIO && d.shortId) locks.add(`s:${d.shortId}`)
  }
  return { creates, finishes, saves, taskIds: [...tasks], lockKeys: [...locks].sort() }
}

export interface StoredSession {
  taskId: string
  shortId: string
  taskType: TaskTypeName
  userId: string | null
  status: TaskSessionStatus
  createdAt: Date
}

/** What the database holds once the batch's facts are recorded (finished tasks and saves included). */
export interface StoredState {
  /** Sessions of the batch's tasks and every scenario session of a saved short id. */
  sessions: Map<string, StoredSession>
  outcomes: Map<string, Outcome>
  savedAt: Map<string, Date>
}

/** The session a task must have given everything known about it, or null for none. */
export function desiredStatus(
  session: { taskType: TaskTypeName; createdAt: Date },
  outcome: Outcome | undefined,
  savedAt: Date | undefined
): TaskSessionStatus | null {
  if (session.taskType === SCRAPING) return null
  if (outcome && (session.taskType !== SCENARIO || outcome === 'cancelled' || outcome === 'removed')) return null
  // A save ends every scenario session whose task was created before it.
  if (session.taskType === SCENARIO && savedAt && savedAt >= session.createdAt) return null
  return outcome ?? 'active'
}

export interface SessionChanges {
  insert: Array<CreatedFact & { status: TaskSessionStatus }>
  update: Array<{ taskId: string; status: TaskSessionStatus }>
  remove: Map<string, RemovalReason>
}

function removalReason(taskType: TaskTypeName, outcome: Outcome | undefined): RemovalReason {
  if (outcome === 'removed') return 'deleted'
  if (outcome && (taskType !== SCENARIO || outcome === 'cancelled')) return outcome
  return 'scenario_saved'
}

/** Compares what each task's session must be with what is stored: rows to insert, update and remove. */
export function planChanges(facts: BatchFacts, state: StoredState): SessionChanges {
  const changes: SessionChanges = { insert: [], update: [], remove: new Map() }
  const candidates = new Set([...facts.creates.keys(), ...state.sessions.keys()])
  for (const taskId of candidates) {
    const stored = state.sessions.get(taskId)
    const created = facts.creates.get(taskId)
    const info = stored ?? created
    if (!info) continue
    // A stored session outside this batch's tasks keeps its own status as its outcome.
    const outcome = state.outcomes.get(taskId) ?? (stored && stored.status !== 'active' ? stored.status : undefined)
    const savedAt = info.taskType === SCENARIO ? state.savedAt.get(info.shortId) : undefined
    const status = desiredStatus(info, outcome, savedAt)
    if (stored) {
      if (status === null) changes.remove.set(taskId, removalReason(info.taskType, outcome))
      else if (status !== stored.status) changes.update.push({ taskId, status })
    } else if (status !== null && created) {
      changes.insert.push({ ...created, status })
    }
  }
  return changes
}
