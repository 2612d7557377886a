import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { ChatCloseCodes } from '@platform/contracts'
import { anonymousIdentity, identityOf, tokenFromProtocols, type ChatIdentity } from '../domain/identity.js'
import { Connection } from '../plugins/chat-hub.js'

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
  const socket = request.raw.socket as unknown as { _httpMessage?: { detachSocket(s: unknown): void } | null }
  socket._httpMessage?.detachSocket(socket)
}

/** GET /ws/chat: authenticates the upgrade (4401 on a bad token), greets, hands the socket to the hub. */
export const wsRoutes: FastifyPluginAsync<WsRouteOptions> = async (fastify, opts) => {
  const hub = fastify.chatHub

  /** The identity behind the upgrade, or the code of the reason to refuse it. */
  const identify = (request: FastifyRequest, connectionId: string): ChatIdentity | string => {
    const query = request.query as { token?: unknown }
    const token =
      typeof query.token === 'string' && query.token !== ''
        ? query.token
        : tokenFromProtocols(request.headers['sec-websocket-protocol'])
    if (!token) return opts.allowAnonymous ? anonymousIdentity(connectionId) : 'TOKEN_MISSING'
    try {
      return identityOf(fastify.verifyToken(token))
    } catch (err) {
      return (err as { code?: string }).code ?? 'TOKEN_INVALID'
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
