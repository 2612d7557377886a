import type { ChatUserType } from '@platform/contracts'
import type { Principal } from '@platform/kit'

/** Who is on a chat connection. */
export interface ChatIdentity {
  /** The JWT `sub`, or `anon-<connectionId>` for anonymous connections. */
  id: string
  type: ChatUserType
  anonymous: boolean
  admin: boolean
  /** The token's `sid` claim: the login session the chat counts towards. */
  loginSessionId: string | undefined
  /** Token expiry in epoch milliseconds, 0 when none. */
  expiresAt: number
}

/** Providers chat as `provider` (role), everyone else with a token as `client`. */
export function identityOf(principal: Principal): ChatIdentity {
  return {
    id: principal.sub,
    type: principal.roles.includes('provider') ? 'provider' : 'client',
    anonymous: false,
    admin: principal.roles.includes('admin'),
    loginSessionId: principal.sid,
    expiresAt: principal.exp ? principal.exp * 1000 : 0
  }
}

export function anonymousIdentity(connectionId: string): ChatIdentity {
  return { id: `anon-${connectionId}`, type: 'anonymous', anonymous: true, admin: false, loginSessionId: undefined, expiresAt: 0 }
}

/** What a connection may do in a session: its owner reads and writes, an admin only reads, others nothing. */
export function accessTo(session: { userId: string | null }, who: ChatIdentity): 'write' | 'read' | 'none' {
  // An anonymous session has no owner: its random id is the capability to join it.
  if (session.userId === null) return 'write'
  if (!who.anonymous && session.userId === who.id) return 'write'
  if (who.admin) return 'read'
  return 'none'
}

/** `["chat", "<jwt>"]` in Sec-WebSocket-Protocol: the entry that looks like a JWT. */
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export function tokenFromProtocols(header: string | undefined): string | undefined {
  if (!header) return undefined
  for (const p of header.split(',')) {
    const v = p.trim()
    if (JWT.test(v)) return v
  }
  return undefined
}

/** The subprotocol to answer with: the first one that is not the token; the token itself when it was alone. */
export function selectProtocol(protocols: Set<string>): string | false {
  let token: string | false = false
  for (const p of protocols) {
    if (!JWT.test(p)) return p
    token = p
  }
  return token
}
