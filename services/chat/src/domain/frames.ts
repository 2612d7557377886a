import { Compile, type Validator } from 'typebox/compile'
import type { TSchema } from 'typebox'
import {
  ChatClientFrames,
  ChatLiveEnvelope,
  type ChatClientFrame,
  type ChatClientFrameType,
  type ChatFrameRef
} from '@platform/contracts'

export type ParsedFrame =
  | { ok: true; frame: ChatClientFrame }
  | { ok: false; code: 'INVALID_FRAME' | 'UNKNOWN_TYPE'; message: string; ref?: ChatFrameRef }

const validators = Object.fromEntries(
  Object.entries(ChatClientFrames).map(([type, schema]) => [type, Compile(schema as TSchema)])
) as Record<ChatClientFrameType, Validator>

const liveValidator = Compile(ChatLiveEnvelope)

const isRef = (v: unknown): v is ChatFrameRef =>
  (typeof v === 'string' && v.length > 0 && v.length <= 128) || (typeof v === 'number' && Number.isInteger(v))

/** The most useful validation message: unknown fields first, then the first concrete failure. */
function describe(validator: Validator, value: unknown): string {
  const errors = [...validator.Errors(value)]
  const extra = errors.find((e) => e.keyword === 'additionalProperties')
  if (extra) {
    const names = (extra.params as { additionalProperties?: string[] }).additionalProperties ?? []
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

/** Parses one client frame and checks it against its contract; `ref` is kept when it is usable. */
export function parseClientFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): ParsedFrame {
  if (isBinary) return { ok: false, code: 'INVALID_FRAME', message: 'Send JSON text frames, not binary ones' }
  let value: unknown
  try {
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8')
    value = JSON.parse(text)
  } catch {
    return { ok: false, code: 'INVALID_FRAME', message: 'The frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'INVALID_FRAME', message: 'A frame is a JSON object with a "type"' }
  }
  const { type, ref } = value as { type?: unknown; ref?: unknown }
  const echo = isRef(ref) ? { ref } : {}
  if (typeof type !== 'string') return { ok: false, code: 'INVALID_FRAME', message: 'The frame has no "type" string', ...echo }
  const validator = Object.hasOwn(validators, type) ? validators[type as ChatClientFrameType] : undefined
  if (!validator) {
    return {
      ok: false,
      code: 'UNKNOWN_TYPE',
      message: `Unknown frame type "${type.slice(0, 50)}"; use one of ${Object.keys(validators).join(', ')}`,
      ...echo
    }
  }
  if (!validator.Check(value)) return { ok: false, code: 'INVALID_FRAME', message: `Invalid ${type} frame: ${describe(validator, value)}`, ...echo }
  return { ok: true, frame: value as ChatClientFrame }
}

/** A live envelope from another instance, or null when it does not match the contract. */
export function parseLiveEnvelope(data: Uint8Array): ChatLiveEnvelope | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
    return liveValidator.Check(value) ? (value as ChatLiveEnvelope) : null
  } catch {
    return null
  }
}
