import t from 'tap'
import { CloudEvent, HTTP } from 'cloudevents'
import type { FastifyInstance } from 'fastify'
import { bearer, testToken, waitFor, type TestSchema } from '@platform/kit/testing'
import { T, build, consuming, deadLetters, outboxEvents, publisher, sessionStates } from './helper.js'

/**
 * Events from outside producers, made with the official CloudEvents SDK: ids that are not UUIDs, no
 * datacontenttype, no time, extension attributes; structured and binary mode, over HTTP and NATS.
 */

const service = bearer(testToken('producer', ['service']))
const SOURCE = 'https://producer.example/go-service'

interface Message {
  headers: Record<string, string>
  body: string
}

/** An SDK event; the SDK always sets `time`, so `untimed` ones are sent without it, as a Go or Dapr producer may. */
function sdkEvent(type: string, id: string, data: Record<string, unknown>, time?: Date): { ce: CloudEvent<unknown>; untimed: boolean } {
  return {
    ce: new CloudEvent<unknown>({
      specversion: '1.0',
      type,
      source: SOURCE,
      id,
      data,
      comexamplerequest: 'r-1',
      ...(time ? { time: time.toISOString() } : {})
    }),
    untimed: !time
  }
}
/** The SDK's message as this test sends it: single-valued headers and a text body. */
function sdkMessage(m: { headers: Record<string, string | string[] | undefined>; body: unknown }): Message {
  if (typeof m.body !== 'string') throw new Error('the SDK gave no text body')
  const headers = Object.fromEntries(Object.entries(m.headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])))
  return { headers, body: m.body }
}
/** A JSON object's text as a record to edit. */
function parseObject(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`not a JSON object: ${text}`)
  return Object.fromEntries(Object.entries(value))
}
function structured({ ce, untimed }: ReturnType<typeof sdkEvent>): Message {
  const m = sdkMessage(HTTP.structured(ce))
  const event = parseObject(m.body)
  if (untimed) delete event.time
  return { headers: m.headers, body: JSON.stringify(event) }
}
/** Binary mode without datacontenttype: no Content-Type (the SDK would send application/json). */
function binary({ ce, untimed }: ReturnType<typeof sdkEvent>): Message {
  const { headers, body } = sdkMessage(HTTP.binary(ce))
  delete headers['content-type']
  if (untimed) delete headers['ce-time']
  return { headers, body }
}

const post = (app: FastifyInstance, m: Message) =>
  app.inject({ method: 'POST', url: '/api/v1/task-sessions/events', headers: { ...service, ...m.headers }, payload: m.body })

async function receivedAt(schema: TestSchema, id: string): Promise<string> {
  const { rows } = await schema.query<{ received_at: Date }>('SELECT received_at FROM event_receipts WHERE source = $1 AND id = $2', [SOURCE, id])
  if (rows.length !== 1) throw new Error(`no receipt for ${id}`)
  return rows[0]!.received_at.toISOString()
}

t.test('an untimed event without datacontenttype is applied once, whatever the mode and channel of its copies', async (t) => {
  const { app, schema, config } = await build(t)
  await consuming(app)
  const pub = await publisher(t, config.NATS_NAMESPACE)
  const created = sdkEvent(T.created, 'go-0001', { taskId: 'ce1-a', taskType: 'image_analysis', shortId: 'ce1', userId: 'u1' })
  t.notOk('datacontenttype' in JSON.parse(structured(created).body), 'the event has no datacontenttype')

  const first = await post(app, structured(created))
  t.equal(first.statusCode, 200)
  t.same(first.json(), { id: 'go-0001', type: 'tasks.created', changes: { created: 1, updated: 0, removed: 0 } })
  const at = await receivedAt(schema, 'go-0001')
  const session = await app.inject({ method: 'GET', url: '/api/v1/task-sessions/task/ce1-a', headers: service })
  t.same(
    session.json(),
    {
      taskId: 'ce1-a',
      shortId: 'ce1',
      taskType: 'image_analysis',
      userId: 'u1',
      status: 'active',
      createdAt: at,
      updatedAt: session.json().updatedAt
    },
    'an event without time is dated when it was first received'
  )

  const again = await post(app, binary(created))
  t.equal(again.statusCode, 200)
  t.same(again.json(), { id: 'go-0001', type: 'tasks.created', changes: { created: 0, updated: 0, removed: 0 } }, 'the binary copy changes nothing')

  await pub.message(T.created, binary(created))
  await pub.message(T.created, structured(created))
  await waitFor(() => app.taskEvents!.stats.processed === 2, 20_000)
  t.same(await sessionStates(schema), ['ce1-a:active'])
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/task-sessions/task/ce1-a', headers: service })).json().createdAt, at)
  t.same(await outboxEvents(schema), ['sessions.task.created ce1-a'], 'one session, announced once')
  t.equal(app.taskEvents!.stats.deadLettered, 0)

  // The end of the task, in binary mode over NATS, with a time of its own.
  await pub.message(
    T.completed,
    binary(sdkEvent(T.completed, 'go-0002', { taskId: 'ce1-a', taskType: 'image_analysis', shortId: 'ce1' }, new Date()))
  )
  await waitFor(() => app.taskEvents!.stats.processed === 3, 20_000)
  t.same(await sessionStates(schema), [])
  t.same(await outboxEvents(schema), ['sessions.task.created ce1-a', 'sessions.task.removed ce1-a completed'])
  const { rows } = await schema.query<{ n: number }>('SELECT count(*)::int AS n FROM event_receipts')
  t.equal(rows[0]!.n, 1, 'only events without time are remembered')
})

t.test('an untimed scenario save sent twice, over HTTP then NATS, keeps its first time', async (t) => {
  const { app, schema, config } = await build(t)
  await consuming(app)
  const pub = await publisher(t, config.NATS_NAMESPACE)
  const hourAgo = new Date(Date.now() - 3_600_000)
  const scenario = (taskId: string) => ({ taskId, taskType: 'scenario_generation', shortId: 'ce2' })

  t.equal((await post(app, structured(sdkEvent(T.created, 'go-0101', scenario('ce2-a'), hourAgo)))).json().changes.created, 1)
  t.equal((await post(app, binary(sdkEvent(T.completed, 'go-0102', scenario('ce2-a'), hourAgo)))).json().changes.updated, 1)
  const save = sdkEvent(T.scenarioSaved, 'go-0103', { shortId: 'ce2' })
  t.same((await post(app, binary(save))).json().changes, { created: 0, updated: 0, removed: 1 })
  const savedAt = new Date(await receivedAt(schema, 'go-0103'))

  // A scenario task created (just) after the save keeps its session, even when a copy of the save comes later.
  const later = new Date(savedAt.getTime() + 1)
  t.equal((await post(app, structured(sdkEvent(T.created, 'go-0104', scenario('ce2-b'), later)))).json().changes.created, 1)
  await pub.message(T.scenarioSaved, structured(save))
  await waitFor(() => app.taskEvents!.stats.processed === 1, 20_000)
  t.same(await sessionStates(schema), ['ce2-b:active'])
  t.same(await outboxEvents(schema), ['sessions.task.created ce2-a', 'sessions.task.removed ce2-a scenario_saved', 'sessions.task.created ce2-b'])
  const { rows } = await schema.query<{ saved_at: Date }>("SELECT saved_at FROM scenario_saves WHERE short_id = 'ce2'")
  t.equal(rows[0]!.saved_at.toISOString(), savedAt.toISOString())
})

/** Envelopes each broken in one way, structured and binary: [what is wrong, the message, the detail it is refused with]. */
function invalidEnvelopes(good: ReturnType<typeof sdkEvent>): Array<[string, Message, string]> {
  const edit = (m: Message, fn: (event: Record<string, unknown>) => void): Message => {
    const event = parseObject(m.body)
    fn(event)
    return { headers: m.headers, body: JSON.stringify(event) }
  }
  const s = structured(good)
  const b = binary(good)
  return [
    ['bad time', edit(s, (e) => (e.time = '2026-13-01T00:00:00Z')), 'time: "2026-13-01T00:00:00Z" is not an RFC 3339 timestamp'],
    ['bad time', { headers: { ...b.headers, 'ce-time': 'yesterday' }, body: b.body }, 'time: "yesterday" is not an RFC 3339 timestamp'],
    [
      'non-JSON datacontenttype',
      { headers: { ...b.headers, 'content-type': 'text/plain' }, body: 'ce3-a created' },
      'datacontenttype: "text/plain" is not JSON: send application/json or application/*+json data'
    ],
    [
      'non-JSON datacontenttype',
      edit(s, (e) => Object.assign(e, { datacontenttype: 'application/xml', data: '<task/>' })),
      'datacontenttype: "application/xml" is not JSON: send application/json or application/*+json data'
    ],
    [
      'data_base64 where JSON is required',
      structured({ ce: new CloudEvent({ ...good.ce, data: Buffer.from('{"taskId":"ce3-a"}') }), untimed: false }),
      'data_base64: binary data is not accepted: this consumer needs JSON in data'
    ],
    [
      'bad extension name',
      edit(s, (e) => (e.com_example = 'x')),
      'com_example: is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits'
    ],
    [
      'bad extension name',
      { headers: { ...b.headers, 'ce-averyveryverylongextension': 'x' }, body: b.body },
      'averyveryverylongextension: is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits'
    ],
    ['missing required attribute', edit(s, (e) => delete e.source), 'source: is required'],
    [
      'missing required attribute',
      { headers: Object.fromEntries(Object.entries(b.headers).filter(([k]) => k !== 'ce-type')), body: b.body },
      'type: is required (header ce-type)'
    ],
    ['wrong specversion', edit(s, (e) => (e.specversion = '0.3')), 'specversion: "0.3" is not supported: only "1.0"'],
    ['wrong specversion', { headers: { ...b.headers, 'ce-specversion': '1.1' }, body: b.body }, 'specversion: "1.1" is not supported: only "1.0"']
  ]
}

t.test('invalid envelopes are refused naming the attribute: 400 over HTTP, dead-lettered from JetStream with their headers', async (t) => {
  const { app, schema, config } = await build(t)
  await consuming(app)
  const ns = config.NATS_NAMESPACE
  const pub = await publisher(t, ns)
  const cases = invalidEnvelopes(sdkEvent(T.created, 'go-0201', { taskId: 'ce3-a', taskType: 'image_analysis', shortId: 'ce3' }, new Date()))

  for (const [name, message, detail] of cases) {
    const res = await post(app, message)
    t.equal(res.statusCode, 400, name)
    t.same(
      { code: res.json().code, message: res.json().message },
      { code: 'INVALID_EVENT_ENVELOPE', message: `The event is not a valid CloudEvents 1.0 event: ${detail}` },
      name
    )
  }
  for (const [, message] of cases) await pub.message(T.created, message)
  await waitFor(() => app.taskEvents!.stats.deadLettered === cases.length, 20_000)
  const letters = await deadLetters(pub.nc, ns)
  t.same(
    letters.map((l) => [l.on, l.reason, l.detail]),
    cases.map(([, , detail]) => [`${ns}.dlq.tasks.created`, 'INVALID_ENVELOPE', detail])
  )
  // Binary-mode letters keep every header, so the event can be replayed as it came.
  const binaryLetter = letters[2]!
  t.same(binaryLetter.headers, Object.fromEntries(Object.entries(cases[2]![1].headers).map(([k, v]) => [k, [v]])))
  t.equal(binaryLetter.payload, 'ce3-a created')
  t.equal(letters[0]!.payload, cases[0]![1].body)

  t.same(await sessionStates(schema), [], 'nothing was applied')
  t.same(await outboxEvents(schema), [])
  t.equal(app.taskEvents!.stats.processed, 0)
})

t.test('the intake tells content modes apart: batches and other event formats are 415, a plain JSON envelope still works', async (t) => {
  const { app, schema } = await build(t, { TASK_EVENTS_ENABLED: 'false' })
  const batch = await post(app, { headers: { 'content-type': 'application/cloudevents-batch+json' }, body: '[]' })
  t.equal(batch.statusCode, 415)
  t.equal(batch.json().code, 'UNSUPPORTED_MEDIA_TYPE')
  const avro = await post(app, { headers: { 'content-type': 'application/cloudevents+avro' }, body: 'x' })
  t.equal(avro.statusCode, 415)
  const event = sdkEvent(
    T.created,
    'go-0301',
    { taskId: 'ce4-a', taskType: 'video_generation', shortId: 'ce4' },
    new Date('2026-01-02T03:04:05.678Z')
  )
  const plain = await post(app, { headers: { 'content-type': 'application/json' }, body: structured(event).body })
  t.same(plain.json(), { id: 'go-0301', type: 'tasks.created', changes: { created: 1, updated: 0, removed: 0 } })
  const percent = binary(sdkEvent(T.completed, 'go-0302', { taskId: 'ce4-a', taskType: 'video_generation', shortId: 'ce4' }, new Date()))
  // Percent-encoded header values (HTTP binding 3.1.3.2) are decoded: this source is the same as the other's.
  percent.headers['ce-source'] = SOURCE.replace('/go-service', '/go%2Dservice')
  percent.headers['content-type'] = 'application/json; charset=utf-8'
  t.same((await post(app, percent)).json(), { id: 'go-0302', type: 'tasks.completed', changes: { created: 0, updated: 0, removed: 1 } })
  t.same(await sessionStates(schema), [])
  const { rows } = await schema.query<{ n: number }>('SELECT count(*)::int AS n FROM event_receipts')
  t.equal(rows[0]!.n, 0, 'events with a time need no receipt')
})

t.test('receipts of untimed events are purged with the other remembered facts', async (t) => {
  const { app, schema } = await build(t, { TASK_EVENTS_ENABLED: 'false', FINISHED_TASK_RETENTION_DAYS: '0' })
  const created = sdkEvent(T.created, 'go-0401', { taskId: 'ce5-a', taskType: 'image_analysis', shortId: 'ce5' })
  t.equal((await post(app, binary(created))).json().changes.created, 1)
  await receivedAt(schema, 'go-0401')
  const res = await app.inject({ method: 'POST', url: '/internal/cleanup', headers: service, payload: {} })
  t.equal(res.json().finishedTasksPurged, 1)
  const { rows } = await schema.query<{ n: number }>('SELECT count(*)::int AS n FROM event_receipts')
  t.equal(rows[0]!.n, 0)
  t.same(await sessionStates(schema), ['ce5-a:active'], 'active sessions stay')
})
