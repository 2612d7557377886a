import type { RouteContract } from '@platform/contracts'

type Json = Record<string, unknown>

export interface OpenApiInfo {
  title: string
  version: string
  description: string
}

/** Errors any proxied route can get from the gateway itself, whatever the service documents. */
const GATEWAY_RESPONSES: Record<number, string> = {
  413: 'PAYLOAD_TOO_LARGE (the gateway accepts at most REQUEST_SIZE_LIMIT bytes, streamed or not)',
  429: 'RATE_LIMITED, with Retry-After and RateLimit-* headers',
  502: 'UPSTREAM_ERROR: the service could not be reached',
  503: 'CIRCUIT_OPEN (with Retry-After and X-Degradation-Mode), or the service\'s own 503',
  504: 'UPSTREAM_TIMEOUT: the service did not answer in time'
}

/** A JSON copy of a TypeBox schema in which every schema with a `$id` becomes a shared component. */
function toSchema(schema: unknown, components: Record<string, Json>): Json {
  const walk = (node: unknown, top: boolean): unknown => {
    if (Array.isArray(node)) return node.map((n) => walk(n, false))
    if (node === null || typeof node !== 'object') return node
    const obj = node as Json
    const id = obj.$id
    if (typeof id === 'string' && !top) {
      if (!components[id]) {
        components[id] = {} // placeholder first, so a schema that refers to itself terminates
        components[id] = walk(obj, true) as Json
      }
      return { $ref: `#/components/schemas/${id}` }
    }
    const out: Json = {}
    for (const [k, v] of Object.entries(obj)) if (k !== '$id') out[k] = walk(v, false)
    return out
  }
  return walk(schema, false) as Json
}

function parameters(schema: unknown, where: 'path' | 'query', components: Record<string, Json>): Json[] {
  const s = toSchema(schema, components)
  const props = (s.properties ?? {}) as Record<string, Json>
  const required = new Set((s.required as string[] | undefined) ?? [])
  return Object.entries(props).map(([name, prop]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    ...(typeof prop.description === 'string' ? { description: prop.description } : {}),
    schema: prop
  }))
}

/** `GET /api/v1/sessions/{title}` → `getApiV1SessionsTitle`. */
function operationId(r: RouteContract): string {
  const camel = r.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))
  return `${r.method.toLowerCase()}${camel}`
}

function operation(service: string, r: RouteContract, components: Record<string, Json>): Json {
  const responses: Json = {}
  for (const [status, res] of Object.entries(r.responses)) {
    responses[status] = {
      description: res.description,
      ...(res.schema ? { content: { 'application/json': { schema: toSchema(res.schema, components) } } } : {})
    }
  }
  for (const [status, description] of Object.entries(GATEWAY_RESPONSES)) {
    responses[status] ??= { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorReply' } } } }
  }
  const params = [
    ...(r.params ? parameters(r.params, 'path', components) : []),
    ...(r.querystring ? parameters(r.querystring, 'query', components) : [])
  ]
  return {
    operationId: operationId(r),
    tags: [r.tag],
    summary: r.summary,
    'x-service': service,
    'x-auth': r.auth,
    security: r.auth === 'none' ? [] : [{ bearer: [] }],
    ...(params.length ? { parameters: params } : {}),
    ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(r.body, components) } } } } : {}),
    responses
  }
}

/**
 * The OpenAPI 3.1 document of the whole public API, built from the route contracts every service
 * publishes (packages/contracts PublicApi), so it grows with each service without touching the gateway.
 */
export function buildOpenApi(api: Record<string, RouteContract[]>, info: OpenApiInfo, errorReply: unknown): Json {
  const components: Record<string, Json> = {}
  toSchema({ wrapper: errorReply }, components) // registers ErrorReply (it has a $id)
  const paths: Record<string, Json> = {}
  const tags = new Set<string>()
  for (const [service, routes] of Object.entries(api)) {
    for (const r of routes) {
      tags.add(r.tag)
      const item = (paths[r.path] ??= {})
      item[r.method.toLowerCase()] = operation(service, r, components)
    }
  }
  return {
    openapi: '3.1.0',
    info,
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } }
    }
  }
}
