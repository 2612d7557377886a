import type { IncomingHttpHeaders } from 'node:http'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and `host`: they describe one connection, never the next one.
 * `expect: 100-continue` too: Node's server has already answered it to the client (curl sends it with
 * any body over 1 MiB), and undici refuses to send it.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings'
])

/**
 * Headers through which a client could claim an identity or an origin: services must learn who the
 * caller is from the verified token only, and where it came from from the gateway.
 */
const CLIENT_IDENTITY = new Set([
  'x-user-id',
  'x-user',
  'x-roles',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-remote-user',
  'remote-user',
  'x-principal',
  'x-real-ip',
  'x-client-ip',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-request-id'
])
const CLIENT_IDENTITY_PREFIXES = ['x-user-', 'x-auth-', 'x-authenticated-', 'x-consumer-', 'x-credential-', 'x-gateway-']

function isClientIdentity(name: string): boolean {
  if (CLIENT_IDENTITY.has(name)) return true
  if (name.charCodeAt(0) !== 120 /* x */) return false
  for (const p of CLIENT_IDENTITY_PREFIXES) if (name.startsWith(p)) return true
  return false
}

/** Names listed in a Connection header are hop-by-hop too. */
function connectionListed(connection: string | undefined): Set<string> | null {
  // What nearly every client sends, answered without parsing.
  if (!connection || connection === 'keep-alive' || connection === 'close' || connection === 'Keep-Alive') return null
  const names = connection
    .toLowerCase()
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'close' && s !== 'keep-alive')
  return names.length ? new Set(names) : null
}

export interface ForwardedFor {
  requestId: string
  clientIp: string
  host: string | undefined
  proto: string
}

/**
 * The headers an upstream receives, as [name, value, …] (what undici takes fastest): the client's, cleaned,
 * plus the gateway's own forwarding headers. Content-Length is left out of a request without a body.
 */
export function upstreamHeaders(src: IncomingHttpHeaders, fwd: ForwardedFor, withBody = true): string[] {
  const listed = connectionListed(src.connection)
  const out: string[] = []
  for (const name in src) {
    if (HOP_BY_HOP.has(name) || isClientIdentity(name) || (listed !== null && listed.has(name))) continue
    if (!withBody && name === 'content-length') continue
    const value = src[name]
    if (typeof value === 'string') out.push(name, value)
    else if (value !== undefined) for (const v of value) out.push(name, v)
  }
  out.push('x-request-id', fwd.requestId, 'x-forwarded-for', fwd.clientIp, 'x-real-ip', fwd.clientIp, 'x-forwarded-proto', fwd.proto)
  if (fwd.host) out.push('x-forwarded-host', fwd.host)
  return out
}

/** Response headers a client must not receive from the upstream's connection. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name)
}
