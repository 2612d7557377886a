import type { RouteContract } from './routes.js'
import { NamedSessionRoutes } from './named-sessions.js'

/** Every public route of the platform, per service: the gateway's OpenAPI document is built from this. */
export const PublicApi: Record<string, RouteContract[]> = {
  sessions: [...NamedSessionRoutes]
}
