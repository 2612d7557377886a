import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { ErrorReply, PublicApi } from '@platform/contracts'
import { buildOpenApi, type PathKind } from '../domain/openapi.js'
import { ProxyRoutes, WebSocketRoutes } from '../domain/route-table.js'

export interface DocsOptions {
  /** The document's server: PUBLIC_URL, or `/` (wherever the document was fetched from). */
  serverUrl: string
}

/** One line per tag the route contracts use (the document refuses a tag without one). */
const TAGS: Record<string, string> = {
  gateway: "The gateway's own health, readiness and metrics",
  'named sessions': 'Named work sessions: one active per user (the sessions service)',
  'login sessions': 'Login and device sessions behind the login-session guard (the sessions service)',
  'task sessions': 'Sessions tied to background tasks (the task-sessions service)',
  chat: 'Chat sessions over REST and the WebSocket (the chat service)',
  cleanup: 'Cleanup schedules and runs, for admins (the cleanup-worker)'
}

/** Who answers a path: a relayed WebSocket upgrade, a service behind a proxied prefix, or the gateway. */
function kindOf(path: string): PathKind {
  if (WebSocketRoutes[path]) return 'websocket'
  return ProxyRoutes.some((r) => path === r.prefix || path.startsWith(`${r.prefix}/`)) ? 'proxy' : 'gateway'
}

/**
 * /docs: Swagger UI, and the OpenAPI document at /docs/json, built once at startup from every route
 * contract in packages/contracts (PublicApi), so each service's routes appear as soon as it publishes them.
 */
export const docsPlugin = fp<DocsOptions>(
  async (fastify, opts) => {
    const document = buildOpenApi(
      PublicApi,
      {
        info: {
          title: 'Session platform API',
          version: '1.0.0',
          description:
            'Every public route, through the gateway. Send `Authorization: Bearer <JWT>`. Errors are ' +
            '`{error, message, code, requestId}`; every reply carries `X-Request-Id`, proxied ones `RateLimit-*`, and ' +
            'a degraded one `X-Degradation-Mode` and `X-Degradation-Reason`.'
        },
        serverUrl: opts.serverUrl,
        tags: TAGS,
        kind: kindOf
      },
      ErrorReply
    )
    await fastify.register(swagger, { mode: 'static', specification: { document: document as never } })
    await fastify.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true }, staticCSP: true })
  },
  { name: 'docs' }
)
