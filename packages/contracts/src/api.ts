import type { RouteContract } from './routes.js'
import { NamedSessionRoutes } from './named-sessions.js'
import { TaskSessionRoutes } from './task-sessions.js'
import { ChatRoutes } from './chat.js'

/** Every public route of the platform, per service: the gateway's OpenAPI document is built from this. */
export const PublicApi: Record<string, RouteContract[]> = {
  sessions: [...NamedSessionRoutes],
  'task-sessions': [...TaskSessionRoutes],
  chat: [...ChatRoutes]
}
