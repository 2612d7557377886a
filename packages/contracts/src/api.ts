import type { RouteContract } from './routes.js'
import { NamedSessionRoutes } from './named-sessions.js'
import { LoginSessionRoutes } from './login-sessions.js'
import { TaskSessionRoutes } from './task-sessions.js'
import { ChatRoutes } from './chat.js'
import { GatewayRoutes } from './gateway.js'
import { CleanupRoutes } from './cleanup.js'

/** Every public route of the platform, per service: the gateway's OpenAPI document is built from this. */
export const PublicApi: Record<string, RouteContract[]> = {
  gateway: [...GatewayRoutes],
  sessions: [...NamedSessionRoutes, ...LoginSessionRoutes],
  'task-sessions': [...TaskSessionRoutes],
  chat: [...ChatRoutes],
  'cleanup-worker': [...CleanupRoutes]
}
