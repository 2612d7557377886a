import t from 'tap'
import { collectFacts, desiredStatus, planChanges, SCENARIO, type Outcome, type StoredSession, type TaskEventInput } from '../src/domain/lifecycle.js'
import { T, taskIdOf } from './helper.js'

/** The database, in memory: what the task store's SQL reads and writes, batch by batch. */
function simulate(batches: TaskEventInput[][]): string[] {
  const sessions = new Map<string, StoredSession>()
  const outcomes = new Map<string, Outcome>()
  const saves = new Map<string, Date>()
  for (const events of batches) {
    const facts = collectFacts(events)
    for (const f of facts.finishes.values()) if (!outcomes.has(f.taskId)) outcomes.set(f.taskId, f.outcome)
    for (const [s, at] of facts.saves) if (!saves.has(s) || saves.get(s)! < at) saves.set(s, at)
    const visible = [...sessions.values()].filter((s) => facts.taskIds.includes(s.taskId) || (s.taskType === SCENARIO && facts.saves.has(s.shortId)))
    const plan = planChanges(facts, {
      sessions: new Map(visible.map((s) => [s.taskId, s])),
      outcomes: new Map(facts.taskIds.filter((id) => outcomes.has(id)).map((id) => [id, outcomes.get(id)!])),
      savedAt: saves
    })
    for (const id of plan.remove.keys()) sessions.delete(id)
    for (const i of plan.insert) if (!sessions.has(i.taskId)) sessions.set(i.taskId, { ...i })
    for (const u of plan.update) sessions.get(u.taskId)!.status = u.status
  }
  return [...sessions.values()].map((s) => `${s.taskId}:${s.status}`).sort()
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
const ev = (type: string, time: number, data: object): TaskEventInput => ({ type, time: at(time), data })
const task = (taskId: string, taskType: string, shortId = 'x1') => ({ taskId, taskType, shortId, userId: 'u1' })

const story: TaskEventInput[] = [
  ev(T.created, 1, task('a', 'image_analysis')),
  ev(T.created, 2, task('b', 'scenario_generation')),
  ev(T.created, 3, task('c', 'scenario_generation')),
  ev(T.created, 4, task('d', 'scenario_generation')),
  ev(T.created, 5, task('s', 'scraping')),
  ev(T.created, 6, { taskId: 'n', taskType: 'video_generation' }),
  ev(T.completed, 7, task('a', 'image_analysis')),
  ev(T.completed, 8, task('b', 'scenario_generation')),
  ev(T.cancelled, 9, task('c', 'scenario_generation')),
  ev(T.failed, 10, task('d', 'scenario_generation')),
  ev(T.created, 11, task('f', 'scenario_generation', 'x2')),
  ev(T.completed, 12, task('f', 'scenario_generation', 'x2')),
  ev(T.scenarioSaved, 13, { shortId: 'x1' }),
  ev(T.created, 14, task('e', 'scenario_generation')),
  ev(T.created, 15, task('g', 'finalize_short')),
  ev(T.failed, 16, task('h', 'data_extraction'))
]
const final = ['e:active', 'f:completed', 'g:active']

t.test('in stream order, one event per batch, the story ends as the rules say', async (t) => {
  t.same(simulate(story.map((e) => [e])), final)
  t.same(simulate([story]), final, 'and in a single batch')
})

t.test('any order, any batching, any duplicates: the same final state', async (t) => {
  let seed = 42
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  for (let run = 0; run < 500; run++) {
    const events = [...story, ...story.filter(() => random() < 0.3)] // some duplicates
    for (let i = events.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[events[i], events[j]] = [events[j]!, events[i]!]
    }
    const batches: TaskEventInput[][] = []
    for (let i = 0; i < events.length;) {
      const size = 1 + Math.floor(random() * 5)
      batches.push(events.slice(i, i + size))
      i += size
    }
    const result = simulate(batches)
    if (result.join() !== final.join()) {
      t.same(result, final, `run ${run}: ${events.map((e) => `${e.type}:${taskIdOf(e.data) ?? ''}`).join(' ')}`)
      return
    }
  }
  t.pass('500 shuffled, batched and duplicated runs all ended in the same state')
})

t.test('desiredStatus', async (t) => {
  const created = new Date(at(5))
  t.equal(desiredStatus({ taskType: 'image_analysis', createdAt: created }, undefined, undefined), 'active')
  t.equal(desiredStatus({ taskType: 'image_analysis', createdAt: created }, 'failed', undefined), null)
  t.equal(desiredStatus({ taskType: 'scraping', createdAt: created }, undefined, undefined), null)
  t.equal(desiredStatus({ taskType: 'scenario_generation', createdAt: created }, 'completed', undefined), 'completed')
  t.equal(
    desiredStatus({ taskType: 'scenario_generation', createdAt: created }, 'failed', new Date(at(4))),
    'failed',
    'a save before its creation does not end it'
  )
  t.equal(desiredStatus({ taskType: 'scenario_generation', createdAt: created }, undefined, new Date(at(5))), null)
  t.equal(desiredStatus({ taskType: 'scenario_generation', createdAt: created }, 'removed', undefined), null)
})

t.test('collectFacts keeps the first of duplicates and locks tasks and scenario short ids in sorted order', async (t) => {
  const facts = collectFacts([
    ev(T.created, 1, task('b', 'scenario_generation', 's9')),
    ev(T.created, 2, task('b', 'scenario_generation', 'other')),
    ev(T.failed, 3, task('a', 'image_analysis')),
    ev(T.completed, 4, task('a', 'image_analysis')),
    ev(T.scenarioSaved, 5, { shortId: 's1' }),
    ev(T.scenarioSaved, 4, { shortId: 's1' }),
    ev(T.created, 6, task('z', 'scraping'))
  ])
  t.equal(facts.creates.get('b')?.shortId, 's9')
  t.equal(facts.finishes.get('a')?.outcome, 'failed')
  t.same(facts.saves.get('s1'), new Date(at(5)))
  t.same(facts.taskIds.sort(), ['a', 'b'])
  t.same(facts.lockKeys, ['s:other', 's:s1', 's:s9', 't:a', 't:b'])
})
