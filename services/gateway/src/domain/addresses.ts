import type { IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'

/** `10.0.0.0/8, 192.168.1.2` → a trust function; an empty list trusts nobody. */
export function compileAddressList(list: string): ((addr: string, i: number) => boolean) | null {
  const entries = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  return entries.length ? proxyAddr.compile(entries) : null
}

const MAPPED_V4 = '::ffff:'

function normalize(ip: string): string {
  return ip.startsWith(MAPPED_V4) && ip.includes('.') ? ip.slice(MAPPED_V4.length) : ip
}

/**
 * The client's address: the socket peer, unless that peer is a trusted proxy, in which case
 * X-Forwarded-For is read right to left up to the first address that is not trusted. A header from
 * anyone else is ignored, so it can never change a client's rate-limit bucket.
 */
export function clientAddress(req: IncomingMessage, trust: ((addr: string, i: number) => boolean) | null): string {
  if (!trust) return normalize(req.socket.remoteAddress ?? '')
  return normalize(proxyAddr(req, trust))
}

/** Whether the socket peer is on an allow list (null = everyone). */
export function peerAllowed(req: IncomingMessage, allow: ((addr: string, i: number) => boolean) | null): boolean {
  return allow === null || allow(normalize(req.socket.remoteAddress ?? ''), 0)
}
