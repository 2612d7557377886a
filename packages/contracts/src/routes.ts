import type { TSchema } from 'typebox'

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
  /** Status → description and, unless empty, the reply schema. */
  responses: Record<number, { description: string; schema?: TSchema }>
}
