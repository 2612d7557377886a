import t from 'tap'
import { Type } from 'typebox'
import { Registry } from 'prom-client'
import { pino } from 'pino'
import { createEvent } from '../src/index.js'
import { exponentialBackoff, failureFate, messageFates } from '../src/events/ack-policy.js'
import { batchApplier } from '../src/events/apply.js'
import { consumerTally } from '../src/events/consumer-metrics.js'
import { deadLetterOf, errorDetail, payloadOf, type DeadLetter } from '../src/events/dead-letter.js'
import { messageDecoder, type ConsumedEvent, type ConsumerMessage } from '../src/events/decode.js'
import { outageGate } from '../src/events/outage.js'
import { progressAcks } from '../src/events/worker.js'
import { testClock } from '../src/testing/index.js'

// The consumer's units without NATS or Fastify: messages are stand-ins that record what was done to them.

const NS = 'unit'
const TYPE = 'tasks.created'
const types = { [TYPE]: Type.Object({ n: Type.Integer() }) }
const log = pino({ level: 'silent' })
const encoder = new TextEncoder()

/** The event's `n`, which the decode step checked against the schema of its type. */
function nOf(e: ConsumedEvent): number {
  const data = e.event.data
  if (typeof data === 'object' && data !== null && 'n' in data && typeof data.n === 'number') return data.n
  throw new Error(`unexpected data ${JSON.stringify(data)}`)
}

interface FakeMessage extends ConsumerMessage {
  done: string[]
}

function message(seq: number, body: string | Uint8Array, deliveryCount = 1, subject = TYPE): FakeMessage {
  const done: string[] = []
  return {
    done,
    seq,
    subject: `${NS}.${subject}`,
    data: typeof body === 'string' ? encoder.encode(body) : body,
    headers: undefined,
    info: { deliveryCount },
    ack: () => void done.push('ack'),
    nak: (ms?: number) => void done.push(ms === undefined ? 'nak' : `nak ${ms}`),
    working: () => void done.push('wpi')
  }
}

const eventMessage = (seq: number, n: number, deliveryCount = 1) => {
  const event = createEvent(TYPE, '/unit', { n })
  return { event, m: message(seq, JSON.stringify(event), deliveryCount) }
}

/** The fates, apply step and gate wired as the consumer wires them, with a fixed backoff (100 ms × delivery). */
function harness(handle: (events: ConsumedEvent[]) => Promise<void>, opts: { healthy?: boolean; maxDeliveries?: number } = {}) {
  const letters: DeadLetter[] = []
  const clock = testClock().freeze(Date.parse('2030-01-02T03:04:05.000Z'))
  const tally = consumerTally(new Registry(), 'unit-test')
  const backoff = (n: number) => 100 * n
  const healthy = async () => opts.healthy ?? true
  const gate = outageGate({ healthy, backoff, log, onChange: (paused) => tally.paused(paused) })
  const origin = { stream: 'UNIT_TASKS', consumer: 'unit-test', now: () => clock.now() }
  const publish = async (letter: DeadLetter) => void letters.push(letter)
  const fates = messageFates({ tally, gate, backoff, healthy, origin, log, maxDeliveries: opts.maxDeliveries ?? 3, publish })
  const apply = batchApplier({ decode: messageDecoder(NS, types), handle, fates, paused: () => gate.paused, backoff, log })
  return { apply, letters, tally, gate }
}

t.test('exponential backoff doubles per delivery up to the cap, within ±10 % jitter', async (t) => {
  const low = exponentialBackoff(500, 30_000, () => 0)
  const high = exponentialBackoff(500, 30_000, () => 1)
  const mid = exponentialBackoff(500, 30_000, () => 0.5)
  t.same([1, 2, 3, 4, 7, 8, 100].map(mid), [500, 1000, 2000, 4000, 30_000, 30_000, 30_000])
  t.same([1, 2, 3].map(low), [450, 900, 1800])
  t.same([1, 2, 3].map(high), [550, 1100, 2200])
})

t.test('a handler failure is redelivered until max deliveries, then dead-lettered; an outage never is', async (t) => {
  const dbDown = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
  const broken = new Error('cannot handle')
  const healthy = async () => true
  const down = async () => false
  t.equal(await failureFate(broken, 1, 3, healthy), 'redeliver')
  t.equal(await failureFate(broken, 2, 3, healthy), 'redeliver')
  t.equal(await failureFate(broken, 3, 3, healthy), 'dead-letter')
  t.equal(await failureFate(broken, 3, 3, down), 'outage', 'the database stopped answering meanwhile')
  t.equal(await failureFate(dbDown, 1, 3, healthy), 'outage')
  t.equal(await failureFate(dbDown, 30, 3, healthy), 'outage')
})

t.test('a dead letter keeps the message as sent, as text or base64, with the time of the injected clock', async (t) => {
  const origin = { stream: 'NS_TASKS', consumer: 'c1', now: () => Date.parse('2030-01-02T03:04:05.000Z') }
  const text = message(7, '{"specversion": "1.0", "id": ', 2)
  t.same(deadLetterOf(text, TYPE, 'INVALID_JSON', 'x'.repeat(1500), origin), {
    reason: 'INVALID_JSON',
    detail: 'x'.repeat(1000),
    subject: TYPE,
    stream: 'NS_TASKS',
    consumer: 'c1',
    streamSequence: 7,
    deliveryCount: 2,
    deadLetteredAt: '2030-01-02T03:04:05.000Z',
    payload: '{"specversion": "1.0", "id": '
  })
  t.same(payloadOf(new Uint8Array([0xff, 0xfe, 0x00])), { payload: '//4A', payloadEncoding: 'base64' })
  t.equal(errorDetail(new Error('boom')), 'boom')
  t.equal(errorDetail('plain'), 'plain')
  t.equal(errorDetail({ message: 'shaped like an error' }), 'shaped like an error')
})

t.test('the decode step strips the namespace and refuses what does not match its subject or schema', async (t) => {
  const decode = messageDecoder(NS, types)
  const { event, m } = eventMessage(3, 1, 2)
  t.same(decode(m), { ok: true, delivery: { m, item: { event, mode: 'structured', subject: TYPE, deliveryCount: 2, streamSequence: 3 } } })
  t.same(decode(message(4, JSON.stringify({ ...event, data: { n: 'one' } }))), {
    ok: false,
    subject: TYPE,
    reason: 'INVALID_DATA',
    detail: '/n must be integer'
  })
  t.same(decode(message(5, JSON.stringify(event), 1, 'tasks.removed')), {
    ok: false,
    subject: 'tasks.removed',
    reason: 'INVALID_ENVELOPE',
    detail: 'type: "tasks.created" does not match subject "tasks.removed"'
  })
})

t.test('a batch is handled together and acked; refused messages are dead-lettered and acked', async (t) => {
  const calls: number[][] = []
  const { apply, letters, tally } = harness(async (events) => void calls.push(events.map((e) => nOf(e))))
  const a = eventMessage(1, 1)
  const bad = message(2, 'not json')
  const b = eventMessage(3, 2)
  await apply([a.m, bad, b.m])
  t.same(calls, [[1, 2]], 'one handler call for the valid events, in stream order')
  t.same([a.m.done, bad.done, b.m.done], [['ack'], ['ack'], ['ack']])
  t.same(
    letters.map((l) => [l.reason, l.streamSequence, l.payload, l.deadLetteredAt]),
    [['INVALID_JSON', 2, 'not json', '2030-01-02T03:04:05.000Z']]
  )
  t.same(tally.stats, { processed: 2, failed: 0, deadLettered: 1 })
})

t.test('a failed batch is retried event by event: each gets its own fate', async (t) => {
  const calls: number[][] = []
  const { apply, letters, tally, gate } = harness(async (events) => {
    calls.push(events.map((e) => nOf(e)))
    if (events.some((e) => nOf(e) === 2)) throw new Error('cannot handle n=2')
  })
  const first = eventMessage(1, 1)
  const poison = eventMessage(2, 2, 3)
  const young = eventMessage(3, 2, 1)
  const last = eventMessage(4, 4)
  await apply([first.m, poison.m, young.m, last.m])
  t.same(calls, [[1, 2, 2, 4], [1], [2], [2], [4]])
  t.same(first.m.done, ['ack'])
  t.same(poison.m.done, ['ack'], 'at max deliveries: dead-lettered, then acked')
  t.same(young.m.done, ['nak 100'], 'before max deliveries: nak with the backoff of its first delivery')
  t.same(last.m.done, ['ack'])
  t.same(
    letters.map((l) => [l.reason, l.detail, l.streamSequence, l.deliveryCount]),
    [['HANDLER_FAILED', 'cannot handle n=2', 2, 3]]
  )
  t.same(tally.stats, { processed: 2, failed: 2, deadLettered: 1 })
  t.notOk(gate.paused)
})

t.test('a database outage naks the whole batch with backoff and pauses; a commit resumes', async (t) => {
  let down = true
  const { apply, letters, tally, gate } = harness(
    async () => {
      if (down) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' })
    },
    { healthy: false, maxDeliveries: 1 }
  )
  const a = eventMessage(1, 1, 5)
  const b = eventMessage(2, 2, 1)
  await apply([a.m, b.m])
  t.same([a.m.done, b.m.done], [['nak 500'], ['nak 100']])
  t.ok(gate.paused)
  t.same(letters, [], 'an outage never dead-letters, past max deliveries or not')
  t.same(tally.stats, { processed: 0, failed: 2, deadLettered: 0 })
  down = false
  const c = eventMessage(3, 3)
  await apply([c.m])
  t.same(c.m.done, ['ack'])
  t.notOk(gate.paused)
})

t.test('progress acks go to messages the server has not heard of for half the ack wait, by the injected clock', async (t) => {
  const clock = testClock().freeze()
  const inFlight = [message(1, '{}'), message(2, '{}')]
  const waiting = [message(3, '{}')]
  let connected = true
  const progress = progressAcks({ ackWaitMs: 10_000, now: () => clock.now(), held: () => [inFlight, waiting], connected: () => connected })
  for (const m of [...inFlight, ...waiting]) progress.told(m)
  clock.advance(4_999)
  progress.keep()
  t.same(
    [...inFlight, ...waiting].map((m) => m.done),
    [[], [], []],
    'not yet half the ack wait'
  )
  clock.advance(1)
  progress.keep()
  t.same(
    [...inFlight, ...waiting].map((m) => m.done),
    [['wpi'], ['wpi'], ['wpi']]
  )
  progress.keep()
  t.same(
    [...inFlight, ...waiting].map((m) => m.done.length),
    [1, 1, 1],
    'once per half ack wait'
  )
  clock.advance(5_000)
  connected = false
  progress.keep()
  t.same(
    [...inFlight, ...waiting].map((m) => m.done.length),
    [1, 1, 1],
    'nothing while NATS is away: it would be lost'
  )
  connected = true
  progress.keep()
  t.same(
    [...inFlight, ...waiting].map((m) => m.done.length),
    [2, 2, 2]
  )
})

t.test('the outage gate probes with backoff and hands held messages back between probes', async (t) => {
  const probes: boolean[] = [false, false, true]
  const waits: number[] = []
  const released: number[] = []
  const gate = outageGate({
    healthy: async () => probes.shift() ?? true,
    backoff: (n) => {
      waits.push(n)
      return 1
    },
    log,
    onChange: () => {}
  })
  gate.enter(new Error('down'))
  await gate.wait(
    (delay) => void released.push(delay),
    () => false
  )
  t.notOk(gate.paused, 'resumed once a probe answered')
  t.same(released, [1, 1], 'held messages went back after each failed probe')
  t.same(waits, [1, 1, 2, 2, 3], 'the pause and the nak delay grow with each probe')
})
