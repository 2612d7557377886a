import type { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import { DEGRADATION_MODE_HEADER, DEGRADATION_REASON_HEADER, joinDegradation } from '@platform/contracts'
import { isHopByHop } from '../domain/headers.js'
import type { UpstreamResponse } from '../upstreams/attempt.js'

/**
 * The upstream's X-Degradation-Mode and -Reason join the reply's own (modes and reasons alike, the
 * gateway's first). Rare: most answers carry none, and the scan costs a few comparisons.
 */
function joinTheirDegradation(reply: FastifyReply, upstream: string[]): void {
  let modes: string | undefined
  let reasons: string | undefined
  for (let i = 0; i < upstream.length; i += 2) {
    if (upstream[i] === DEGRADATION_MODE_HEADER) modes = upstream[i + 1]
    else if (upstream[i] === DEGRADATION_REASON_HEADER) reasons = upstream[i + 1]
  }
  if (modes !== undefined) joinDegradation(reply, modes, reasons)
}

/** Relayed unless hop-by-hop, the upstream's request id or degradation (the reply has its own), or a name the gateway set. */
function relayable(name: string, own: readonly string[]): boolean {
  return !isHopByHop(name) && name !== 'x-request-id' && name !== DEGRADATION_MODE_HEADER && name !== DEGRADATION_REASON_HEADER && !own.includes(name)
}

/**
 * The headers a client gets, as [name, value, …] for writeHead: the reply's own first (rate limit, session
 * id, request id), then the upstream's that are relayable; Set-Cookie from both, last, as one list (a name
 * given twice to writeHead may collapse to its last value).
 */
function clientHeaders(reply: FastifyReply, upstream: string[]): Array<string | string[]> {
  joinTheirDegradation(reply, upstream)
  const own = reply.getHeaders()
  const names: string[] = []
  const headers: Array<string | string[]> = []
  let cookies: string[] | null = null
  for (const name in own) {
    const value = own[name]
    if (value === undefined) continue
    names.push(name)
    if (name === 'set-cookie') cookies = Array.isArray(value) ? [...value] : [String(value)]
    else headers.push(name, Array.isArray(value) ? value : String(value))
  }
  for (let i = 0; i < upstream.length; i += 2) {
    const name = upstream[i] ?? ''
    const value = upstream[i + 1] ?? ''
    if (name === 'set-cookie') (cookies ??= []).push(value)
    else if (relayable(name, names)) headers.push(name, value)
  }
  if (cookies) headers.push('set-cookie', cookies)
  return headers
}

/** A streamed answer goes through Fastify's send, the relayed headers set on the reply. */
export function relayStreamed(reply: FastifyReply, statusCode: number, upstream: string[], body: Readable): FastifyReply {
  joinTheirDegradation(reply, upstream)
  const own = Object.keys(reply.getHeaders())
  for (let i = 0; i < upstream.length; i += 2) {
    const name = upstream[i] ?? ''
    if (name === 'set-cookie') reply.header(name, upstream[i + 1])
    else if (relayable(name, own)) {
      reply.header(name, upstream[i + 1])
      own.push(name) // a name given twice: the first stands, as it always has here
    }
  }
  return reply.code(statusCode).send(body)
}

/**
 * A buffered upstream answer goes to the client in one writeHead and end on the raw response, past
 * Fastify's send pipeline (proxied routes have no onSend hooks; onResponse still runs).
 */
export function relayBuffered(reply: FastifyReply, statusCode: number, upstream: string[], body: Buffer): FastifyReply {
  const headers = clientHeaders(reply, upstream)
  reply.hijack()
  reply.raw.writeHead(statusCode, headers)
  reply.raw.end(body)
  return reply
}

/** A response header's value by its (lower-case) name. */
export function headerOf(res: UpstreamResponse, name: string): string | undefined {
  const h = res.headers
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1]
  return undefined
}
