import type { TSchema } from 'typebox'
import type { ErrorCode } from './errors.js'

/** One public route as the gateway documents it in OpenAPI (/docs): every service lists its own. */
export interface RouteContract {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** OpenAPI style: /api/v1/sessions/{title} */
  path: string
  summary: string
  tag: string
  /** Who may call it: `none` is public, the rest need a bearer token with that role (`user` = any). */
  auth: 'none' | 'user' | 'admin' | 'service'
  params?: TSchema
  querystring?: TSchema
  body?: TSchema
  /** Status → description, unless empty the reply schema, and for an error the codes it may carry (`errorResponse`). */
  responses: Record<number, { description: string; schema?: TSchema; codes?: readonly ErrorCode[] }>
}
