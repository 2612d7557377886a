import { DegradationReasons, type ErrorCode, type RouteContract } from '@platform/contracts'

type Json = Record<string, unknown>

export interface OpenApiInfo {
  title: string
  version: string
  description: string
}

/** Who answers a path: the gateway itself, a service behind it, or a WebSocket upgrade it relays. */
export type PathKind = 'gateway' | 'proxy' | 'websocket'

export interface OpenApiOptions {
  info: OpenApiInfo
  /** The API's base URL: PUBLIC_URL, or `/` (the host that served the document). */
  serverUrl: string
  /** A description per tag; every tag a contract uses needs one. */
  tags: Record<string, string>
  kind(path: string): PathKind
}

/** An answer of the gateway's own: the codes it carries and when. */
interface GatewayAnswer {
  codes: readonly ErrorCode[]
  description: string
}

/** What the gateway itself may answer, per kind of path, whatever the service documents. */
const ANY_PATH: Record<number, GatewayAnswer> = {
  400: {
    codes: ['BAD_REQUEST', 'BAD_URL'],
    description: 'BAD_REQUEST: not valid HTTP; BAD_URL: a malformed percent-encoding in the path (a service answers its own VALIDATION_ERROR)'
  },
  408: { codes: ['REQUEST_TIMEOUT'], description: 'REQUEST_TIMEOUT: the request did not arrive in time' },
  414: { codes: ['URI_TOO_LONG'], description: 'URI_TOO_LONG: the path and query are longer than MAX_URL_LENGTH' },
  431: { codes: ['HEADERS_TOO_LARGE'], description: 'HEADERS_TOO_LARGE: the request line and headers are larger than 16 KiB' },
  500: { codes: ['INTERNAL_ERROR'], description: 'INTERNAL_ERROR: a fault of the gateway itself; report the requestId' }
}
const LIMITED: GatewayAnswer = {
  codes: ['RATE_LIMITED', 'CONCURRENT_SESSION_LIMIT'],
  description: 'RATE_LIMITED (Retry-After, RateLimit-*), or CONCURRENT_SESSION_LIMIT from the login-session guard'
}
const UNREACHABLE: GatewayAnswer = { codes: ['UPSTREAM_ERROR'], description: 'UPSTREAM_ERROR: the service could not be reached' }
const PROXIED: Record<number, GatewayAnswer> = {
  401: {
    codes: ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_ENDED', 'SESSION_REQUIRED'],
    description: 'TOKEN_MISSING, TOKEN_INVALID or TOKEN_EXPIRED; SESSION_ENDED or SESSION_REQUIRED from the login-session guard'
  },
  403: {
    codes: ['FORBIDDEN', 'SECURITY_VIOLATION'],
    description: 'FORBIDDEN (a role is missing) or SECURITY_VIOLATION from the login-session guard'
  },
  404: { codes: ['NOT_FOUND'], description: 'NOT_FOUND: no such route, or a path with . or .. segments' },
  413: {
    codes: ['PAYLOAD_TOO_LARGE'],
    description:
      "PAYLOAD_TOO_LARGE: the body is larger than REQUEST_SIZE_LIMIT, streamed or not, or than the service's own BODY_LIMIT_BYTES; the connection closes after it when the body was still coming"
  },
  429: LIMITED,
  502: UNREACHABLE,
  503: {
    codes: ['CIRCUIT_OPEN', 'SESSION_SERVICE_UNAVAILABLE'],
    description:
      'CIRCUIT_OPEN: the service failed repeatedly (Retry-After, X-Degradation-Mode), or SESSION_SERVICE_UNAVAILABLE from the login-session guard'
  },
  504: { codes: ['UPSTREAM_TIMEOUT'], description: 'UPSTREAM_TIMEOUT: the service did not answer within the request deadline' }
}
const UPGRADE: Record<number, GatewayAnswer> = {
  429: LIMITED,
  502: UNREACHABLE,
  503: {
    codes: ['CIRCUIT_OPEN', 'SERVICE_UNAVAILABLE'],
    description: 'CIRCUIT_OPEN (Retry-After, X-Degradation-Mode), or SERVICE_UNAVAILABLE while the gateway shuts down'
  },
  504: { codes: ['UPSTREAM_TIMEOUT'], description: 'UPSTREAM_TIMEOUT: the service did not complete the handshake in time' }
}
const GATEWAY_RESPONSES: Record<PathKind, Record<number, GatewayAnswer>> = {
  gateway: ANY_PATH,
  proxy: { ...ANY_PATH, ...PROXIED },
  websocket: { ...ANY_PATH, ...UPGRADE }
}

const ref = (name: string) => ({ $ref: `#/components/headers/${name}` })
const modes = Object.entries(DegradationReasons)
  .map(([mode, reason]) => `\`${mode}\` (${reason})`)
  .join(', ')

/** Response headers, shared by reference. */
const HEADERS: Record<string, Json> = {
  'X-Request-Id': { description: "The request id: the client's when sane, else generated; also in every error body", schema: { type: 'string' } },
  'X-Degradation-Mode': {
    description: `Set when the reply was served in a degraded mode; several are joined with ", ". Modes: ${modes}.`,
    schema: { type: 'string', examples: ['rate_limit_local, cache_unavailable'] }
  },
  'X-Degradation-Reason': {
    description: 'One short sentence per mode of X-Degradation-Mode, in the same order, joined with "; "',
    schema: { type: 'string', examples: ['Redis unavailable: limits counted per instance; Cache unavailable: answered from the database'] }
  },
  'Retry-After': { description: 'Seconds before a retry can succeed', schema: { type: 'integer', minimum: 0 } },
  'RateLimit-Limit': { description: 'Requests allowed in the window', schema: { type: 'integer', minimum: 0 } },
  'RateLimit-Remaining': { description: 'Requests left in the window', schema: { type: 'integer', minimum: 0 } },
  'RateLimit-Reset': { description: 'Seconds until the window starts over', schema: { type: 'integer', minimum: 0 } }
}

/** The headers a response of this kind of path may carry. */
function responseHeaders(kind: PathKind, status: number): Json {
  const headers: Json = { 'X-Request-Id': ref('X-Request-Id') }
  if (kind === 'gateway') return headers
  // Any proxied reply may be degraded: the gateway counted it locally or a breaker is open.
  headers['X-Degradation-Mode'] = ref('X-Degradation-Mode')
  headers['X-Degradation-Reason'] = ref('X-Degradation-Reason')
  if (status === 429 || status === 503) headers['Retry-After'] = ref('Retry-After')
  if (kind === 'proxy' || status === 429) {
    for (const name of ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']) headers[name] = ref(name)
  }
  return headers
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

function operation(service: string, r: RouteContract, kind: PathKind, components: Record<string, Json>): Json {
  const responses: Json = {}
  const error = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorReply' } } }
  const own = GATEWAY_RESPONSES[kind]
  const statuses = [...new Set([...Object.keys(r.responses), ...Object.keys(own)].map(Number))].sort((a, b) => a - b)
  for (const status of statuses) {
    const res = r.responses[status]
    const gateway = own[status]
    // A status both may answer says both: the service's meaning, then the gateway's.
    const description = res && gateway ? `${res.description}; from the gateway: ${gateway.description}` : (res?.description ?? gateway?.description)
    const content = res ? (res.schema ? { 'application/json': { schema: toSchema(res.schema, components) } } : undefined) : error
    // The error codes this response may carry, the service's then the gateway's (the catalogue test reads them).
    const codes = [...new Set([...(res?.codes ?? []), ...(gateway?.codes ?? [])])]
    responses[status] = {
      description,
      headers: responseHeaders(kind, status),
      ...(content ? { content } : {}),
      ...(codes.length ? { 'x-error-codes': codes } : {})
    }
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
 * Every operation also lists what the gateway itself may answer on that kind of path.
 */
export function buildOpenApi(api: Record<string, RouteContract[]>, opts: OpenApiOptions, errorReply: unknown): Json {
  const components: Record<string, Json> = {}
  toSchema({ wrapper: errorReply }, components) // registers ErrorReply (it has a $id)
  const paths: Record<string, Json> = {}
  const tags = new Set<string>()
  for (const [service, routes] of Object.entries(api)) {
    for (const r of routes) {
      tags.add(r.tag)
      const item = (paths[r.path] ??= {})
      item[r.method.toLowerCase()] = operation(service, r, opts.kind(r.path), components)
    }
  }
  const missing = [...tags].filter((tag) => !opts.tags[tag])
  if (missing.length) throw new Error(`OpenAPI: no description for the tag(s) ${missing.join(', ')}`)
  return {
    openapi: '3.1.0',
    info: opts.info,
    servers: [{ url: opts.serverUrl, description: 'The gateway' }],
    tags: [...tags].sort().map((name) => ({ name, description: opts.tags[name] })),
    paths,
    components: {
      schemas: components,
      headers: HEADERS,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } }
    }
  }
}
