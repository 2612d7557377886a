import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import {
  DEGRADATION_MODE_HEADER,
  DEGRADATION_REASON_HEADER,
  degradationHeaders,
  joinDegradation,
  type ErrorCode,
  type ErrorReply
} from '@platform/contracts'
import { isHopByHop } from '../domain/headers.js'

/** The close code of a refused token (docs/architecture.md, Identity). */
export const UNAUTHORIZED = 4401
export const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
export const TOKEN_PREFIX = /^(bearer|access_token|jwt)\./i

export function offeredProtocols(header: string | undefined): string[] {
  return header
    ? header
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
    : []
}

/** `?token=` first, else an offered subprotocol shaped like a JWT (optionally `bearer.<jwt>`). */
export function tokenOf(url: string, protocols: string[]): string | undefined {
  const q = url.indexOf('?')
  if (q !== -1) {
    const fromQuery = new URLSearchParams(url.slice(q + 1)).get('token')
    if (fromQuery) return fromQuery
  }
  for (const p of protocols) {
    const candidate = p.replace(TOKEN_PREFIX, '')
    if (JWT_SHAPE.test(candidate)) return candidate
  }
  return undefined
}

/** The subprotocol a refusal's handshake picks: the first that is not a token. */
export function refusalProtocol(protocols: Set<string>): string | false {
  const list = [...protocols]
  return list.find((p) => !JWT_SHAPE.test(p.replace(TOKEN_PREFIX, ''))) ?? list[0] ?? false
}

/** An HTTP answer to an upgrade that will not happen, in the platform's error shape. */
export function refuse(socket: Duplex, status: number, code: ErrorCode, message: string, requestId: string, headers: Record<string, string> = {}) {
  const retryAfter = headers['retry-after'] ? { retryAfter: Number(headers['retry-after']) } : {}
  const body = JSON.stringify({ error: STATUS_CODES[status] ?? 'Error', message, code, requestId, ...retryAfter } satisfies ErrorReply)
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    `x-request-id: ${requestId}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)
  ]
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`)
}

/**
 * The gateway's own modes first, then those the upstream's handshake answer carried (their reasons
 * kept when they pair up), as on relayed HTTP replies.
 */
export function joinUpstreamDegradation(headers: IncomingHttpHeaders, own: readonly string[]): void {
  const values = degradationHeaders(own)
  const theirs = headers[DEGRADATION_MODE_HEADER]
  if (typeof theirs === 'string') {
    const target = { getHeader: (name: string) => values[name], header: (name: string, value: string) => (values[name] = value) }
    const reasons = headers[DEGRADATION_REASON_HEADER]
    joinDegradation(target, theirs, typeof reasons === 'string' ? reasons : undefined)
  }
  Object.assign(headers, values)
}

/** The 101 the client receives: the upstream's own handshake answer (its Accept, protocol, extensions). */
export function switchingProtocols(upstream: IncomingHttpHeaders, requestId: string): string {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'upgrade: websocket', 'connection: Upgrade']
  for (const [name, value] of Object.entries(upstream)) {
    if (isHopByHop(name) || name === 'x-request-id' || value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`)
  }
  lines.push(`x-request-id: ${requestId}`)
  return `${lines.join('\r\n')}\r\n\r\n`
}
