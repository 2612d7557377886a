import type { DegradationMode, RouteContract } from '@platform/contracts'

/** The services behind the gateway, by the name used in URLs, metrics and X-Degradation-Mode. */
export const ServiceNames = ['sessions', 'task-sessions', 'chat', 'cleanup-worker'] as const
export type ServiceName = (typeof ServiceNames)[number]

/** Who may pass a route: any verified token (`user`), or one carrying the admin role. */
export type Access = 'user' | 'admin'

export interface ProxyRoute {
  /** Matches the prefix itself and everything below it (`/prefix/...`), never `/prefixfoo`. */
  prefix: string
  service: ServiceName
  access: Access
  /** Upstream answer time per attempt when this route needs more than UPSTREAM_TIMEOUT_MS. */
  timeoutMs?: number
  /** The whole request's time (every attempt) when this route needs more than REQUEST_DEADLINE_MS. */
  deadlineMs?: number
}

/** The one upstream table (docs/architecture.md). Anything else, /internal/* included, is 404. */
export const ProxyRoutes: readonly ProxyRoute[] = [
  { prefix: '/api/v1/sessions', service: 'sessions', access: 'user' },
  { prefix: '/api/v1/login-sessions', service: 'sessions', access: 'user' },
  { prefix: '/api/v1/task-sessions', service: 'task-sessions', access: 'user' },
  { prefix: '/api/v1/chat', service: 'chat', access: 'user' },
  // A cleanup run may take a while: it gets more time than a read (README: the one longer deadline).
  { prefix: '/api/v1/admin/cleanup', service: 'cleanup-worker', access: 'admin', timeoutMs: 30_000, deadlineMs: 30_000 }
]

/** WebSocket paths and the service each upgrade goes to. */
export const WebSocketRoutes: Readonly<Record<string, ServiceName>> = { '/ws/chat': 'chat' }

/** The X-Degradation-Mode of a service whose breakers are all open (each listed in DegradationReasons). */
const UNAVAILABLE: Record<ServiceName, DegradationMode> = {
  sessions: 'sessions_unavailable',
  'task-sessions': 'task_sessions_unavailable',
  chat: 'chat_unavailable',
  'cleanup-worker': 'cleanup_worker_unavailable'
}

/** `sessions` → `sessions_unavailable`. */
export const unavailableMode = (service: ServiceName): DegradationMode => UNAVAILABLE[service]

/**
 * Routes a contract publishes without auth (`auth: 'none'`), as matchers on method and path:
 * the gateway lets them through without a token. `{param}` matches one path segment.
 */
export function publicRouteMatcher(api: Record<string, RouteContract[]>): (method: string, path: string) => boolean {
  const rules: Array<{ method: string; pattern: RegExp }> = []
  for (const routes of Object.values(api)) {
    for (const r of routes) {
      if (r.auth !== 'none') continue
      const source = r.path
        .split('/')
        .map((seg) => (/^\{[^}]+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')
      rules.push({ method: r.method, pattern: new RegExp(`^${source}$`) })
    }
  }
  if (rules.length === 0) return () => false
  return (method, path) => rules.some((r) => (r.method === method || (method === 'HEAD' && r.method === 'GET')) && r.pattern.test(path))
}
