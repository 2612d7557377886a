import t from 'tap'
import { CloudEvent, HTTP } from 'cloudevents'
import { headers as natsHeaders } from '@nats-io/transport-node'
import { Type } from 'typebox'
import {
  createEvent,
  decodeEvent,
  decodeHeaderValue,
  eventValidator,
  isJsonContentType,
  messageKind,
  parseBinary,
  parseStructured,
  rfc3339,
  type DecodedEvent
} from '../src/index.js'

type Headers = Record<string, string>
interface Message {
  headers: Headers
  body: string
}

const TIME = '2026-03-04T05:06:07.890Z'
const data = { taskId: 'task-1', taskType: 'image_analysis' }
/** What an outside producer sends: an id that is no UUID, no datacontenttype, an extension. */
const sdkEvent = (extra: Record<string, unknown> = {}) =>
  new CloudEvent({
    specversion: '1.0',
    id: 'A234-1234-1234',
    source: 'https://producer.example/tasks',
    type: 'tasks.created',
    time: TIME,
    comexampleext: 'v',
    data,
    ...extra
  })

const structured = (ce: CloudEvent<unknown>): Message => {
  const m = HTTP.structured(ce)
  return { headers: m.headers as Headers, body: m.body as string }
}
const binary = (ce: CloudEvent<unknown>): Message => {
  const m = HTTP.binary(ce)
  return { headers: m.headers as Headers, body: m.body as string }
}
/** A copy of a structured message with its JSON event edited. */
const editBody = (m: Message, edit: (event: Record<string, unknown>) => void): Message => {
  const event = JSON.parse(m.body) as Record<string, unknown>
  edit(event)
  return { headers: m.headers, body: JSON.stringify(event) }
}
/** A copy of a binary message with its headers edited. */
const editHeaders = (m: Message, edit: (headers: Headers) => void): Message => {
  const headers = { ...m.headers }
  edit(headers)
  return { headers, body: m.body }
}
const refusal = (d: DecodedEvent) => (d.ok ? 'accepted' : { reason: d.reason, attribute: d.attribute, detail: d.detail })

t.test('structured and binary events from the CloudEvents SDK decode to the same normalised envelope', async (t) => {
  const expected = {
    specversion: '1.0',
    id: 'A234-1234-1234',
    source: 'https://producer.example/tasks',
    type: 'tasks.created',
    time: TIME,
    subject: 'task-1',
    data
  }
  const ce = sdkEvent({ subject: 'task-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
  const s = decodeEvent(structured(ce))
  t.same(s, { ok: true, mode: 'structured', event: { ...expected, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
  t.notOk(s.ok && 'comexampleext' in s.event, 'other extension attributes are dropped')
  const b = decodeEvent(binary(ce))
  // The SDK's binary mode always sends a Content-Type; it becomes datacontenttype.
  t.same(b, {
    ok: true,
    mode: 'binary',
    event: { ...expected, datacontenttype: 'application/json; charset=utf-8', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }
  })
})

t.test('an event without datacontenttype and time is accepted in both modes; its data is JSON', async (t) => {
  const expected = { specversion: '1.0', id: 'A234-1234-1234', source: 'https://producer.example/tasks', type: 'tasks.created', data }
  const s = editBody(structured(sdkEvent()), (e) => delete e.time)
  t.notOk('datacontenttype' in JSON.parse(s.body))
  t.same(decodeEvent(s), { ok: true, mode: 'structured', event: expected })
  const b = editHeaders(binary(sdkEvent()), (h) => {
    delete h['ce-time']
    delete h['content-type']
  })
  t.same(decodeEvent(b), { ok: true, mode: 'binary', event: expected })
  // Unset attributes may be null in the JSON format.
  const nulls = editBody(s, (e) => Object.assign(e, { time: null, subject: null, datacontenttype: null, dataschema: null, comexampleext: null }))
  t.same(decodeEvent(nulls), { ok: true, mode: 'structured', event: expected })
})

t.test('binary mode over NATS: ce- message headers, the data as the body', async (t) => {
  const m = binary(sdkEvent({ subject: 'Euro € 😀' }))
  const h = natsHeaders()
  for (const [name, value] of Object.entries(m.headers)) h.set(name, name === 'ce-subject' ? 'Euro%20%E2%82%AC%20%F0%9F%98%80' : value)
  h.set('Nats-Msg-Id', 'A234-1234-1234')
  const decoded = decodeEvent({ headers: h, body: new TextEncoder().encode(m.body) })
  t.equal(decoded.ok && decoded.mode, 'binary')
  t.same(decoded.ok && decoded.event, {
    specversion: '1.0',
    id: 'A234-1234-1234',
    source: 'https://producer.example/tasks',
    type: 'tasks.created',
    time: TIME,
    datacontenttype: 'application/json; charset=utf-8',
    subject: 'Euro € 😀',
    data
  })
  // NATS header names are case-insensitive; ce-datacontenttype is the NATS binding's own header.
  const upper = natsHeaders()
  for (const [name, value] of Object.entries(m.headers)) if (name !== 'content-type') upper.set(name.toUpperCase(), value)
  upper.set('ce-datacontenttype', 'application/vnd.example.task+json')
  const d2 = decodeEvent({ headers: upper, body: new TextEncoder().encode(m.body) })
  t.equal(d2.ok && d2.event.datacontenttype, 'application/vnd.example.task+json')
  t.equal(d2.ok && d2.event.subject, 'Euro € 😀')
  const twice = natsHeaders()
  for (const [name, value] of Object.entries(m.headers)) twice.set(name, value)
  twice.append('ce-id', 'another')
  t.same(refusal(decodeEvent({ headers: twice, body: m.body })), {
    reason: 'INVALID_ENVELOPE',
    attribute: 'id',
    detail: 'id: header ce-id is sent more than once'
  })
})

t.test('our own events (structured JSON with no headers) decode unchanged', async (t) => {
  const ours = createEvent('tasks.created', '/task-sessions', data)
  t.same(decodeEvent({ body: JSON.stringify(ours) }), { ok: true, mode: 'structured', event: ours })
  t.same(decodeEvent({ headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(ours)) }), {
    ok: true,
    mode: 'structured',
    event: ours
  })
})

t.test('each invalid envelope is INVALID_ENVELOPE naming the attribute, in either mode', async (t) => {
  const s = structured(sdkEvent())
  const b = binary(sdkEvent())
  const cases: Array<[string, Message, string, string]> = [
    ['bad time', editBody(s, (e) => (e.time = '2026-02-30T10:00:00Z')), 'time', 'time: "2026-02-30T10:00:00Z" is not an RFC 3339 timestamp'],
    ['bad time', editHeaders(b, (h) => (h['ce-time'] = 'yesterday')), 'time', 'time: "yesterday" is not an RFC 3339 timestamp'],
    [
      'non-JSON datacontenttype',
      editBody(s, (e) => (e.datacontenttype = 'text/plain')),
      'datacontenttype',
      'datacontenttype: "text/plain" is not JSON: send application/json or application/*+json data'
    ],
    [
      'non-JSON datacontenttype',
      editHeaders(b, (h) => (h['content-type'] = 'text/plain; charset=utf-8')),
      'datacontenttype',
      'datacontenttype: "text/plain; charset=utf-8" is not JSON: send application/json or application/*+json data'
    ],
    [
      'data_base64 where JSON is required',
      structured(sdkEvent({ data: Buffer.from('{"taskId":"task-1"}') })),
      'data_base64',
      'data_base64: binary data is not accepted: this consumer needs JSON in data'
    ],
    [
      'data and data_base64 together',
      editBody(s, (e) => (e.data_base64 = 'aGk=')),
      'data_base64',
      'data_base64: data and data_base64 are mutually exclusive'
    ],
    [
      'bad extension name',
      structured(new CloudEvent({ ...sdkEvent(), Bad_Ext: 'x' }, false)),
      'Bad_Ext',
      'Bad_Ext: is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits'
    ],
    [
      'bad extension name',
      editHeaders(b, (h) => (h['ce-bad_ext'] = 'x')),
      'bad_ext',
      'bad_ext: is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits'
    ],
    [
      'extension name over 20 characters',
      editBody(s, (e) => (e.abcdefghijklmnopqrstu = 'x')),
      'abcdefghijklmnopqrstu',
      'abcdefghijklmnopqrstu: is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits'
    ],
    [
      'extension value outside the type system',
      editBody(s, (e) => (e.comexampleext = { nested: true })),
      'comexampleext',
      'comexampleext: extension values must be strings, integers or booleans, not {"nested":true}'
    ],
    ['missing source', editBody(s, (e) => delete e.source), 'source', 'source: is required'],
    ['missing source', editHeaders(b, (h) => delete h['ce-source']), 'source', 'source: is required (header ce-source)'],
    ['missing id', editBody(s, (e) => delete e.id), 'id', 'id: is required'],
    ['empty id', editHeaders(b, (h) => (h['ce-id'] = '')), 'id', 'id: must not be empty'],
    ['id not a string', editBody(s, (e) => (e.id = 42)), 'id', 'id: must be a string, not 42'],
    ['missing specversion', editHeaders(b, (h) => delete h['ce-specversion']), 'specversion', 'specversion: is required (header ce-specversion)'],
    ['wrong specversion', structured(sdkEvent({ specversion: '0.3' })), 'specversion', 'specversion: "0.3" is not supported: only "1.0"'],
    ['wrong specversion', binary(sdkEvent({ specversion: '0.3' })), 'specversion', 'specversion: "0.3" is not supported: only "1.0"'],
    ['source not a URI-reference', editBody(s, (e) => (e.source = 'my source')), 'source', 'source: "my source" is not a URI-reference'],
    ['bad scheme', editBody(s, (e) => (e.source = '1x:y')), 'source', 'source: "1x:y" is not a URI-reference'],
    ['relative dataschema', editBody(s, (e) => (e.dataschema = '/schemas/task')), 'dataschema', 'dataschema: "/schemas/task" is not an absolute URI'],
    ['empty subject', editBody(s, (e) => (e.subject = '')), 'subject', 'subject: must not be empty'],
    [
      'not percent-encoded UTF-8',
      editHeaders(b, (h) => (h['ce-subject'] = '%C0%A0')),
      'subject',
      'subject: header ce-subject is not percent-encoded UTF-8'
    ],
    ['data as a header', editHeaders(b, (h) => (h['ce-data'] = '{}')), 'data', 'data: is not an attribute: binary mode carries the data as the body']
  ]
  for (const [name, message, attribute, detail] of cases) {
    t.same(refusal(decodeEvent(message)), { reason: 'INVALID_ENVELOPE', attribute, detail }, name)
  }
})

t.test('bodies that are not JSON, batches and other event formats', async (t) => {
  t.same(refusal(parseStructured('{"specversion":')), { reason: 'INVALID_JSON', attribute: undefined, detail: refusalDetail('{"specversion":') })
  t.same(refusal(parseStructured('')), { reason: 'INVALID_JSON', attribute: undefined, detail: 'the body is empty' })
  t.same(refusal(parseStructured('[]')), {
    reason: 'INVALID_ENVELOPE',
    attribute: undefined,
    detail: 'the event must be a JSON object (one event: batches are not supported)'
  })
  const b = binary(sdkEvent())
  t.same(refusal(parseBinary(b.headers, '{"taskId":')), { reason: 'INVALID_JSON', attribute: 'data', detail: `data: ${refusalDetail('{"taskId":')}` })
  t.same(refusal(parseBinary(b.headers, new Uint8Array([0xff, 0xfe]))), {
    reason: 'INVALID_JSON',
    attribute: 'data',
    detail: 'data: the body is not UTF-8'
  })
  t.same(refusal(decodeEvent({ headers: { 'content-type': 'application/cloudevents-batch+json' }, body: '[]' })), {
    reason: 'INVALID_ENVELOPE',
    attribute: undefined,
    detail: 'the batched content mode (application/cloudevents-batch+json) is not supported: send one event per message'
  })
  t.same(refusal(decodeEvent({ headers: { 'content-type': 'application/cloudevents+avro' }, body: 'x' })), {
    reason: 'INVALID_ENVELOPE',
    attribute: undefined,
    detail: 'the event format "application/cloudevents+avro" is not supported: send application/cloudevents+json or binary mode'
  })
  // An empty binary body is an event without data: the envelope is fine, the validator refuses the data.
  const empty = decodeEvent({ headers: b.headers, body: '' })
  t.equal(empty.ok && empty.event.data, undefined)
})

function refusalDetail(text: string): string {
  try {
    JSON.parse(text)
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

t.test('content modes are told apart by their headers', async (t) => {
  t.equal(messageKind(undefined), 'plain')
  t.equal(messageKind({ 'content-type': 'application/json' }), 'plain')
  t.equal(messageKind({ 'content-type': 'Application/CloudEvents+JSON; charset=utf-8' }), 'structured')
  t.equal(messageKind({ 'Content-Type': 'application/cloudevents' }), 'structured')
  t.equal(messageKind({ 'content-type': 'application/json', 'ce-id': '1' }), 'binary')
  t.equal(messageKind({ 'content-type': 'application/cloudevents-batch+json' }), 'batch')
  t.equal(messageKind({ 'content-type': 'application/cloudevents+protobuf' }), 'unsupported')
})

t.test('JSON media types, RFC 3339 timestamps and header values follow the spec', async (t) => {
  for (const ct of ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/vnd.example+json', 'text/json']) {
    t.ok(isJsonContentType(ct), ct)
  }
  for (const ct of ['text/plain', 'application/octet-stream', 'application/jsonx', 'json', 'application/xml; x=+json'])
    t.notOk(isJsonContentType(ct), ct)
  t.same(['2018-04-05T17:31:00Z', '2018-04-05t17:31:00.5+02:00', '2024-02-29T23:59:59.123456-00:30', '2016-12-31T23:59:60Z'].map(rfc3339), [
    '2018-04-05T17:31:00.000Z',
    '2018-04-05T15:31:00.500Z',
    '2024-03-01T00:29:59.123Z',
    '2016-12-31T23:59:59.999Z'
  ])
  t.same(
    [
      '2018-04-05 17:31:00Z',
      '2018-04-05T17:31:00',
      '2023-02-29T00:00:00Z',
      '2018-04-05T24:00:00Z',
      '2018-04-05T17:31:00+24:00',
      '18-04-05T17:31:00Z'
    ].map(rfc3339),
    [null, null, null, null, null, null]
  )
  t.equal(decodeHeaderValue('Euro%20%E2%82%AC%20%F0%9F%98%80'), 'Euro € 😀')
  t.equal(decodeHeaderValue('%e2%82%ac'), '€', 'lower-case hex is accepted')
  t.equal(decodeHeaderValue('"quoted \\"value\\""'), 'quoted "value"')
  t.equal(decodeHeaderValue('100%'), '100%', 'a lone percent stays as sent')
  t.equal(decodeHeaderValue('%C0%A0'), null, 'an overlong encoding is refused')
})

t.test('the validator adds known types, the subject and the data schema', async (t) => {
  const v = eventValidator({ 'tasks.created': Type.Object({ taskId: Type.String() }) })
  const b = binary(sdkEvent())
  t.equal(v.decode(b, 'tasks.created').ok, true)
  t.same(v.decode(b, 'tasks.completed'), {
    ok: false,
    reason: 'INVALID_ENVELOPE',
    attribute: 'type',
    detail: 'type: "tasks.created" does not match subject "tasks.completed"'
  })
  t.same(v.decode(binary(sdkEvent({ type: 'tasks.started' }))), {
    ok: false,
    reason: 'UNKNOWN_TYPE',
    attribute: 'type',
    detail: 'no handler for event type "tasks.started"'
  })
  t.same(v.decode({ headers: b.headers, body: '' }), { ok: false, reason: 'INVALID_DATA', attribute: 'data', detail: 'data: the event has no data' })
  const wrong = v.decode({ headers: b.headers, body: '{"taskId":7}' })
  t.equal(!wrong.ok && wrong.reason, 'INVALID_DATA')
  t.match(!wrong.ok && wrong.detail, /taskId/)
  t.equal(v.parse(structured(sdkEvent()).body).ok, true)
  t.equal(v.check(JSON.parse(structured(sdkEvent()).body)).ok, true)
})
