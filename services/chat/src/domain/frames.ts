import { Compile, type Validator } from 'typebox/compile'
import type { TSchema } from 'typebox'
import { ChatClientFrames, ChatLiveEnvelope, type ChatClientFrame, type ChatClientFrameType, type ChatFrameRef } from '@platform/contracts'

export type ParsedFrame =
  { ok: true; frame: ChatClientFrame } | { ok: false; code: 'INVALID_FRAME' | 'UNKNOWN_TYPE'; message: string; ref?: ChatFrameRef }

/** One frame type's check: the typed frame when a value matches, and the validator that says why when not. */
function frameCheck<T extends TSchema>(schema: T) {
  const validator = Compile(schema)
  return { validator, parse: (value: unknown) => (validator.Check(value) ? value : null) }
}

const checks = {
  session_init: frameCheck(ChatClientFrames.session_init),
  message: frameCheck(ChatClientFrames.message),
  typing: frameCheck(ChatClientFrames.typing),
  session_close: frameCheck(ChatClientFrames.session_close)
} satisfies Record<ChatClientFrameType, unknown>

const isFrameType = (type: string): type is ChatClientFrameType => Object.hasOwn(checks, type)

const liveValidator = Compile(ChatLiveEnvelope)

const isRef = (v: unknown): v is ChatFrameRef =>
  (typeof v === 'string' && v.length > 0 && v.length <= 128) || (typeof v === 'number' && Number.isInteger(v))

/** The most useful validation message: unknown fields first, then the first concrete failure. */
function describe(validator: Validator, value: unknown): string {
  const errors = validator.Errors(value)
  const extra = errors.find((e) => e.keyword === 'additionalProperties')
  if (extra) {
    const names = extra.params.additionalProperties
    return `unknown field${names.length === 1 ? '' : 's'} ${names.map((n) => `"${n}"`).join(', ')}`
  }
  const first = errors.find((e) => e.keyword !== 'boolean' && e.keyword !== 'anyOf') ?? errors[0]
  if (!first) return 'the frame does not match its schema'
  return `${first.instancePath ? first.instancePath.slice(1).replace(/\//g, '.') : 'frame'} ${first.message}`
}

/** Only the `ref` of a frame (to answer one that will not be processed), when it has a usable one. */
export function refOf(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): ChatFrameRef | undefined {
  const parsed = parseClientFrame(data, isBinary)
  return parsed.ok ? parsed.frame.ref : parsed.ref
}

function textOf(data: Buffer | ArrayBuffer | Buffer[]): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  return Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8')
}

/** Parses one client frame and checks it against its contract; `ref` is kept when it is usable. */
export function parseClientFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): ParsedFrame {
  if (isBinary) return { ok: false, code: 'INVALID_FRAME', message: 'Send JSON text frames, not binary ones' }
  let value: unknown
  try {
    value = JSON.parse(textOf(data))
  } catch {
    return { ok: false, code: 'INVALID_FRAME', message: 'The frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'INVALID_FRAME', message: 'A frame is a JSON object with a "type"' }
  }
  const type = 'type' in value ? value.type : undefined
  const ref = 'ref' in value ? value.ref : undefined
  const echo = isRef(ref) ? { ref } : {}
  if (typeof type !== 'string') return { ok: false, code: 'INVALID_FRAME', message: 'The frame has no "type" string', ...echo }
  if (!isFrameType(type)) {
    const message = `Unknown frame type "${type.slice(0, 50)}"; use one of ${Object.keys(checks).join(', ')}`
    return { ok: false, code: 'UNKNOWN_TYPE', message, ...echo }
  }
  const check = checks[type]
  const frame = check.parse(value)
  if (!frame) return { ok: false, code: 'INVALID_FRAME', message: `Invalid ${type} frame: ${describe(check.validator, value)}`, ...echo }
  return { ok: true, frame }
}

/** A live envelope from another instance, or null when it does not match the contract. */
export function parseLiveEnvelope(data: Uint8Array): ChatLiveEnvelope | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
    return liveValidator.Check(value) ? value : null
  } catch {
    // Not JSON: the caller drops it like any frame that does not match the contract.
    return null
  }
}
