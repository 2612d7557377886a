import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { ErrorReply, PublicApi } from '@platform/contracts'
import { buildOpenApi } from '../domain/openapi.js'

/**
 * /docs: Swagger UI, and the OpenAPI document at /docs/json, built once at startup from every route
 * contract in packages/contracts (PublicApi), so each service's routes appear as soon as it publishes them.
 */
export const docsPlugin = fp(
  async (fastify) => {
    const document = buildOpenApi(
      PublicApi,
      {
        title: 'Session platform API',
        version: '1.0.0',
        description:
          'Every public route, through the gateway. Send `Authorization: Bearer <JWT>`. Errors are ' +
          '`{error, message, code, requestId}`; every reply carries `x-request-id`, proxied ones `RateLimit-*`.'
      },
      ErrorReply
    )
    await fastify.register(swagger, { mode: 'static', specification: { document: document as never } })
    await fastify.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true }, staticCSP: true })
  },
  { name: 'docs' }
)
