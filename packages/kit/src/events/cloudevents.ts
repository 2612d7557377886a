// One file for the CloudEvents 1.0.2 rules (structured and binary, NATS and HTTP bindings): the spec reads in one place.
import type { TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import type { Envelope } from './envelope.js'

/**
 * CloudEvents 1.0.2 decoding, shared by the JetStream consumer and HTTP intakes: structured mode
 * (the JSON event format as the body) and binary mode (attributes in `ce-` headers, the data as the
 * body), over the HTTP and NATS protocol bindings. Whatever the mode, a handler gets one normalised
 * `Envelope`; extension attributes are checked and dropped (`traceparent` is kept).
 */

/** How a message carried its event. */
export type ContentMode = 'structured' | 'binary'
/** Why a message was refused before reaching its handler. */
export type EventRejection = 'INVALID_JSON' | 'INVALID_ENVELOPE' | 'UNKNOWN_TYPE' | 'INVALID_DATA'

/** Headers as node's HTTP server gives them (lower-case keys), or NATS `MsgHdrs` (iterates `[name, values]`). */
export type EventHeaders = Record<string, string | string[] | undefined> | Iterable<[string, string[]]>

/** One message of either binding: HTTP (headers, body) or NATS (`m.headers`, `m.data`). */
export interface EventMessage {
  headers?: EventHeaders | undefined
  body: string | Uint8Array | undefined
}

export type DecodedEvent =
  { ok: true; event: Envelope; mode: ContentMode } | { ok: false; reason: 'INVALID_JSON' | 'INVALID_ENVELOPE'; detail: string; attribute?: string }

export type EventCheck = { ok: true; event: Envelope; mode: ContentMode } | { ok: false; reason: EventRejection; detail: string; attribute?: string }

/**
 * What a message's headers say about its content mode: `plain` is neither a CloudEvents content type
 * nor `ce-` headers (what this platform's outbox publishes, and older producers POST as
 * application/json): its body is read as a structured event. `batch` and `unsupported` (another event
 * format than JSON) cannot be read.
 */
export type MessageKind = ContentMode | 'plain' | 'batch' | 'unsupported'

const CONTEXT = ['specversion', 'id', 'source', 'type', 'datacontenttype', 'dataschema', 'subject', 'time'] as const
const CONTEXT_NAMES = new Set<string>(CONTEXT)
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
const MEDIA_TYPE = new RegExp(`^(${TOKEN})/(${TOKEN})[ \\t]*(?:;.*)?$`)
const URI_CHARS = /^(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/
const utf8 = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

const refuse = (reason: 'INVALID_JSON' | 'INVALID_ENVELOPE', attribute: string | undefined, message: string): DecodedEvent => ({
  ok: false,
  reason,
  detail: attribute ? `${attribute}: ${message}` : message,
  ...(attribute ? { attribute } : {})
})
const quote = (v: unknown) => JSON.stringify(v)?.slice(0, 100) ?? String(v)

/** The media type without parameters, lower-cased, or null when the value is not one. */
function mediaType(value: string): { type: string; subtype: string } | null {
  const m = MEDIA_TYPE.exec(value.trim())
  return m ? { type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase() } : null
}

/** JSON data per the JSON event format: `*\/json` or `*\/*+json`, parameters allowed. */
export function isJsonContentType(value: string): boolean {
  const t = mediaType(value)
  return t !== null && (t.subtype === 'json' || t.subtype.endsWith('+json'))
}

function isUriReference(value: string): boolean {
  if (!URI_CHARS.test(value)) return false
  // A colon before the first / ? # ends a scheme, which must then be a valid one.
  const first = value.search(/[:/?#]/)
  return first < 0 || value[first] !== ':' || SCHEME.test(value)
}

const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate()

/** An RFC 3339 timestamp as UTC ISO-8601 with milliseconds, or null when it is not one. */
export function rfc3339(value: string): string | null {
  const m = RFC3339.exec(value)
  if (!m) return null
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 60) return null
  let offset = 0
  if (!m[8]) {
    const [oh, om] = [Number(m[10]), Number(m[11])]
    if (oh > 23 || om > 59) return null
    offset = (m[9] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const ms = m[7] ? Number(`${m[7].slice(1)}00`.slice(0, 3)) : 0
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  // A leap second is kept inside its minute.
  date.setUTCHours(hour, minute - offset, Math.min(second, 59), second === 60 ? 999 : ms)
  return date.toISOString()
}

/**
 * A header value as the HTTP and NATS bindings encode it: double quotes unescaped, then one round of
 * percent-decoding; null when the result is not UTF-8 (e.g. an overlong encoding).
 */
export function decodeHeaderValue(raw: string): string | null {
  let value = raw.trim()
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1')
  if (!value.includes('%')) return value
  const bytes = encoder.encode(value)
  const out = new Uint8Array(bytes.length)
  let n = 0
  const hex = (b: number | undefined) => b !== undefined && /^[0-9A-Fa-f]$/.test(String.fromCharCode(b))
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x25 && hex(bytes[i + 1]) && hex(bytes[i + 2])) {
      out[n++] = parseInt(String.fromCharCode(bytes[i + 1]!, bytes[i + 2]!), 16)
      i += 2
    } else out[n++] = bytes[i]!
  }
  try {
    return utf8.decode(out.subarray(0, n))
  } catch {
    return null
  }
}

/** Headers as a map of lower-case names to their values. */
function headerMap(headers: EventHeaders | undefined): Map<string, string[]> {
  const map = new Map<string, string[]>()
  if (!headers) return map
  const entries: Iterable<[string, string | string[] | undefined]> =
    Symbol.iterator in headers ? (headers as Iterable<[string, string[]]>) : Object.entries(headers)
  for (const [name, value] of entries) {
    if (value === undefined) continue
    const key = name.toLowerCase()
    map.set(key, [...(map.get(key) ?? []), ...(Array.isArray(value) ? value : [value])])
  }
  return map
}

/** Which content mode a message's headers declare (HTTP and NATS bindings alike). */
export function messageKind(headers: EventHeaders | undefined): MessageKind {
  return kindOf(headerMap(headers))
}

function kindOf(headers: Map<string, string[]>): MessageKind {
  const contentType = headers.get('content-type')?.[0]
  const t = contentType ? mediaType(contentType) : null
  if (t?.type === 'application' && t.subtype.startsWith('cloudevents')) {
    if (t.subtype === 'cloudevents+json' || t.subtype === 'cloudevents') return 'structured'
    return t.subtype === 'cloudevents-batch+json' ? 'batch' : 'unsupported'
  }
  for (const name of headers.keys()) if (name.startsWith('ce-')) return 'binary'
  return 'plain'
}

function bodyText(body: string | Uint8Array | undefined): string | null | undefined {
  if (body === undefined || typeof body === 'string') return body
  try {
    return utf8.decode(body)
  } catch {
    return null
  }
}

type Attributes = Map<string, unknown>

/** Checks the context attributes and builds the normalised envelope; every refusal names its attribute. */
function toEnvelope(attrs: Attributes, extensions: Attributes, data: unknown, mode: ContentMode): DecodedEvent {
  const where = (name: string) => (mode === 'binary' ? ` (header ce-${name === 'datacontenttype' ? 'datacontenttype or content-type' : name})` : '')
  const text = (name: string, required: boolean): string | DecodedEvent | undefined => {
    const v = attrs.get(name)
    if (v === undefined) return required ? refuse('INVALID_ENVELOPE', name, `is required${where(name)}`) : undefined
    if (typeof v !== 'string') return refuse('INVALID_ENVELOPE', name, `must be a string, not ${quote(v)}`)
    if (v.length === 0) return refuse('INVALID_ENVELOPE', name, 'must not be empty')
    return v
  }
  const values: Record<string, string | undefined> = {}
  for (const name of CONTEXT) {
    const v = text(name, name === 'specversion' || name === 'id' || name === 'source' || name === 'type')
    if (typeof v === 'object') return v
    values[name] = v
  }
  const { specversion, id, source, type, datacontenttype, dataschema, subject } = values as Record<string, string>
  if (specversion !== '1.0') return refuse('INVALID_ENVELOPE', 'specversion', `${quote(specversion)} is not supported: only "1.0"`)
  if (!isUriReference(source!)) return refuse('INVALID_ENVELOPE', 'source', `${quote(source)} is not a URI-reference`)
  if (datacontenttype !== undefined) {
    if (!mediaType(datacontenttype)) return refuse('INVALID_ENVELOPE', 'datacontenttype', `${quote(datacontenttype)} is not a media type`)
    if (!isJsonContentType(datacontenttype)) {
      return refuse('INVALID_ENVELOPE', 'datacontenttype', `${quote(datacontenttype)} is not JSON: send application/json or application/*+json data`)
    }
  }
  if (dataschema !== undefined && !(isUriReference(dataschema) && SCHEME.test(dataschema))) {
    return refuse('INVALID_ENVELOPE', 'dataschema', `${quote(dataschema)} is not an absolute URI`)
  }
  let time: string | undefined
  if (values.time !== undefined) {
    const normalised = rfc3339(values.time)
    if (normalised === null) return refuse('INVALID_ENVELOPE', 'time', `${quote(values.time)} is not an RFC 3339 timestamp`)
    time = normalised
  }
  let traceparent: string | undefined
  for (const [name, value] of extensions) {
    if (!EXTENSION_NAME.test(name)) {
      return refuse('INVALID_ENVELOPE', name, 'is not a valid attribute name: names are 1 to 20 lower-case letters (a-z) or digits')
    }
    if (typeof value !== 'string' && typeof value !== 'boolean' && !Number.isInteger(value)) {
      return refuse('INVALID_ENVELOPE', name, `extension values must be strings, integers or booleans, not ${quote(value)}`)
    }
    if (name === 'traceparent' && typeof value === 'string') traceparent = value
  }
  const event: Envelope = {
    specversion: '1.0',
    id: id!,
    source: source!,
    type: type!,
    ...(time !== undefined ? { time } : {}),
    ...(datacontenttype !== undefined ? { datacontenttype } : {}),
    ...(dataschema !== undefined ? { dataschema } : {}),
    ...(subject !== undefined ? { subject } : {}),
    ...(traceparent !== undefined ? { traceparent } : {}),
    data
  }
  return { ok: true, event, mode }
}

/** Checks an already parsed structured-mode event (the JSON event format). */
export function checkStructured(value: unknown): DecodedEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('INVALID_ENVELOPE', undefined, 'the event must be a JSON object (one event: batches are not supported)')
  }
  const attrs: Attributes = new Map()
  const extensions: Attributes = new Map()
  let data: unknown
  let dataBase64: unknown
  for (const [name, v] of Object.entries(value)) {
    if (name === 'data') data = v
    // An unset attribute may be encoded as null (JSON event format, 2.2).
    else if (v === null) continue
    else if (name === 'data_base64') dataBase64 = v
    else if (CONTEXT_NAMES.has(name)) attrs.set(name, v)
    else extensions.set(name, v)
  }
  if (dataBase64 !== undefined) {
    const why = 'data' in value ? 'data and data_base64 are mutually exclusive' : 'binary data is not accepted: this consumer needs JSON in data'
    // Required attributes are named first, so a broken envelope is not reported as a data problem.
    const envelope = toEnvelope(attrs, new Map(), undefined, 'structured')
    return envelope.ok ? refuse('INVALID_ENVELOPE', 'data_base64', why) : envelope
  }
  return toEnvelope(attrs, extensions, data, 'structured')
}

/** Parses and checks a structured-mode event from its JSON text. */
export function parseStructured(text: string | undefined): DecodedEvent {
  if (text === undefined || text.trim() === '') return refuse('INVALID_JSON', undefined, 'the body is empty')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return refuse('INVALID_JSON', undefined, (err as Error).message)
  }
  return checkStructured(value)
}

/**
 * Parses and checks a binary-mode event: attributes from `ce-` headers (percent-decoded), the data
 * from the body. `datacontenttype` is `ce-datacontenttype` (NATS) or `content-type`; absent means JSON.
 */
export function parseBinary(headers: EventHeaders | Map<string, string[]>, body: string | Uint8Array | undefined): DecodedEvent {
  const map = headers instanceof Map ? headers : headerMap(headers)
  const attrs: Attributes = new Map()
  const extensions: Attributes = new Map()
  for (const [header, values] of map) {
    if (!header.startsWith('ce-')) continue
    const name = header.slice(3)
    if (values.length > 1) return refuse('INVALID_ENVELOPE', name, `header ${header} is sent more than once`)
    const value = decodeHeaderValue(values[0]!)
    if (value === null) return refuse('INVALID_ENVELOPE', name, `header ${header} is not percent-encoded UTF-8`)
    if (name === 'data') return refuse('INVALID_ENVELOPE', name, 'is not an attribute: binary mode carries the data as the body')
    if (CONTEXT_NAMES.has(name)) attrs.set(name, value)
    else extensions.set(name, value)
  }
  const contentType = map.get('content-type')?.[0]
  if (!attrs.has('datacontenttype') && contentType !== undefined) attrs.set('datacontenttype', contentType.trim())
  const checked = toEnvelope(attrs, extensions, undefined, 'binary')
  if (!checked.ok) return checked
  const text = bodyText(body)
  if (text === null) return refuse('INVALID_JSON', 'data', 'the body is not UTF-8')
  if (text === undefined || text.length === 0) return checked
  try {
    checked.event.data = JSON.parse(text)
  } catch (err) {
    return refuse('INVALID_JSON', 'data', (err as Error).message)
  }
  return checked
}

/** Decodes one message in whichever content mode its headers declare. */
export function decodeEvent(message: EventMessage): DecodedEvent {
  const headers = headerMap(message.headers)
  const kind = kindOf(headers)
  if (kind === 'binary') return parseBinary(headers, message.body)
  if (kind === 'batch')
    return refuse(
      'INVALID_ENVELOPE',
      undefined,
      'the batched content mode (application/cloudevents-batch+json) is not supported: send one event per message'
    )
  if (kind === 'unsupported') {
    return refuse(
      'INVALID_ENVELOPE',
      undefined,
      `the event format ${quote(headers.get('content-type')?.[0])} is not supported: send application/cloudevents+json or binary mode`
    )
  }
  const text = bodyText(message.body)
  if (text === null) return refuse('INVALID_JSON', undefined, 'the body is not UTF-8')
  return parseStructured(text)
}

function describe(validator: Validator, value: unknown): string {
  return [...validator.Errors(value)]
    .slice(0, 3)
    .map((e) => `${e.instancePath || '/'} ${e.message}`)
    .join('; ')
}

/**
 * The check every consumer and HTTP intake applies: a valid CloudEvents 1.0 event in either content
 * mode, a known type (equal to the subject when one is given), `data` matching its type's schema.
 */
export function eventValidator(types: Record<string, TSchema>): {
  /** A structured event already parsed from JSON. */
  check(value: unknown, expectedType?: string): EventCheck
  /** A structured event as JSON text. */
  parse(text: string, expectedType?: string): EventCheck
  /** A message in either content mode. */
  decode(message: EventMessage, expectedType?: string): EventCheck
} {
  const data = new Map(Object.entries(types).map(([type, schema]) => [type, Compile(schema)]))
  const accept = (decoded: DecodedEvent, expectedType?: string): EventCheck => {
    if (!decoded.ok) return decoded
    const { event } = decoded
    const validator = data.get(event.type)
    if (!validator) return { ok: false, reason: 'UNKNOWN_TYPE', detail: `no handler for event type "${event.type}"`, attribute: 'type' }
    if (expectedType !== undefined && event.type !== expectedType) {
      return { ok: false, reason: 'INVALID_ENVELOPE', detail: `type: "${event.type}" does not match subject "${expectedType}"`, attribute: 'type' }
    }
    if (event.data === undefined) return { ok: false, reason: 'INVALID_DATA', detail: 'data: the event has no data', attribute: 'data' }
    if (!validator.Check(event.data)) return { ok: false, reason: 'INVALID_DATA', detail: describe(validator, event.data), attribute: 'data' }
    return decoded
  }
  return {
    check: (value, expectedType) => accept(checkStructured(value), expectedType),
    parse: (text, expectedType) => accept(parseStructured(text), expectedType),
    decode: (message, expectedType) => accept(decodeEvent(message), expectedType)
  }
}
