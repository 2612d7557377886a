import { randomUUID } from 'node:crypto'
import { ServerResponse } from 'node:http'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { ChatCloseCodes } from '@platform/contracts'
import { anonymousIdentity, identityOf, tokenFromProtocols, type ChatIdentity } from '../domain/identity.js'
import { Connection } from '../hub/connection.js'

export interface WsRouteOptions {
  allowAnonymous: boolean
  maxMessageLength: number
  messagesPerMinute: number
  maxPayloadBytes: number
}

/**
 * @fastify/websocket routes the upgrade through a ServerResponse assigned to the socket; nothing uses
 * it once upgraded, yet it would stay reachable from the socket for the connection's whole life
 * (about 3 KB of heap and 0.5 KB of buffers per connection). Detaching it keeps connections small.
 */
function releaseUpgradeResponse(request: FastifyRequest): void {
  const socket = request.raw.socket
  // Node keeps the upgrade's response as the socket's `_httpMessage`, which its types do not show.
  const response = '_httpMessage' in socket ? socket._httpMessage : null
  if (response instanceof ServerResponse) response.detachSocket(socket)
}

/** The `code` of a thrown error (TOKEN_INVALID, TOKEN_EXPIRED), when it has one. */
const codeOf = (err: unknown): unknown => (typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined)

/** GET /ws/chat: authenticates the upgrade (4401 on a bad token), greets, hands the socket to the hub. */
export const wsRoutes: FastifyPluginAsync<WsRouteOptions> = async (fastify, opts) => {
  const hub = fastify.chatHub

  /** The identity behind the upgrade, or the code of the reason to refuse it. */
  const identify = (request: FastifyRequest, connectionId: string): ChatIdentity | string => {
    const query: unknown = request.query
    const fromQuery = typeof query === 'object' && query !== null && 'token' in query ? query.token : undefined
    const token = typeof fromQuery === 'string' && fromQuery !== '' ? fromQuery : tokenFromProtocols(request.headers['sec-websocket-protocol'])
    if (!token) return opts.allowAnonymous ? anonymousIdentity(connectionId) : 'TOKEN_MISSING'
    try {
      return identityOf(fastify.verifyToken(token))
    } catch (err) {
      const code = codeOf(err)
      return typeof code === 'string' ? code : 'TOKEN_INVALID'
    }
  }

  fastify.get('/ws/chat', { websocket: true }, (socket, request) => {
    if (hub.draining) {
      hub.attach(socket, null)
      return socket.close(ChatCloseCodes.serviceRestart, 'service restart')
    }
    const connectionId = randomUUID()
    const who = identify(request, connectionId)
    if (typeof who === 'string') {
      hub.attach(socket, null)
      request.log.info({ code: who }, 'chat connection refused')
      return socket.close(ChatCloseCodes.unauthorized, who)
    }
    releaseUpgradeResponse(request)
    const conn = new Connection(connectionId, socket, who)
    hub.attach(socket, conn)
    hub.send(conn, {
      type: 'welcome',
      connectionId,
      user: { id: who.id, type: who.type },
      serverTime: new Date().toISOString(),
      limits: {
        maxMessageLength: opts.maxMessageLength,
        messagesPerMinute: opts.messagesPerMinute,
        maxPayloadBytes: opts.maxPayloadBytes
      }
    })
  })
}
