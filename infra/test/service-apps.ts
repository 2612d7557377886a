import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { defineService, serviceConfig, type loadConfig, type ServiceConfig } from '../../packages/kit/src/index.js'
import { buildService, sharedResources, type BuildServiceOptions, type Shared, type Teardown } from '../../packages/kit/src/testing/index.js'

export const ServiceDirs = ['gateway', 'sessions', 'task-sessions', 'chat', 'cleanup-worker'] as const
export type ServiceDir = (typeof ServiceDirs)[number]

// Fastify's and TypeBox's types, read through the kit's signatures: the root package depends on neither.
type ConfigSchema = Parameters<typeof loadConfig>[0]
type AppOptions = { config: Record<string, unknown> }
type App<O extends AppOptions = AppOptions> = BuildServiceOptions<ConfigSchema, O, Shared>['app']

/** What every services/<name>/src/app.ts and config.ts export. */
interface ServiceModule {
  app: App
  ConfigSchema: ConfigSchema
}

function isServiceModule(m: Record<string, unknown>): m is Record<string, unknown> & ServiceModule {
  const schema = m.ConfigSchema
  return typeof m.app === 'function' && typeof schema === 'object' && schema !== null && 'properties' in schema
}

async function exportsOf(file: string): Promise<Record<string, unknown>> {
  const mod: unknown = await import(pathToFileURL(file).href)
  return typeof mod === 'object' && mod !== null ? { ...mod } : {}
}

/**
 * A service's app and config schema, imported by path: each service declares its own Prisma client on
 * Fastify, so their types cannot meet in one program (the tests read only what the guard checks).
 */
export async function serviceModule(root: string, name: ServiceDir): Promise<ServiceModule> {
  const src = join(root, 'services', name, 'src')
  const mod = { ...(await exportsOf(join(src, 'app.ts'))), ...(await exportsOf(join(src, 'config.ts'))) }
  if (!isServiceModule(mod)) throw new Error(`services/${name}/src: app.ts must export app and config.ts ConfigSchema`)
  return mod
}

/** One route as registered: its method and its path with `:param` written `{param}`, as the docs write it. */
export interface Route {
  method: string
  path: string
}

/** Methods Fastify adds by itself (HEAD beside each GET) or that no doc names on their own. */
const IMPLIED = new Set(['HEAD', 'OPTIONS'])

export const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

/** Variables for a quiet boot: no cleanup schedule is upserted, nothing else differs from production. */
const BOOT_ENV: Partial<Record<ServiceDir, Record<string, string>>> = { 'cleanup-worker': { CLEANUP_SCHEDULES: 'none' } }

/**
 * Builds the real app (config, kit plugins, the service's plugins, its routes) on a schema and namespace of
 * the test's own, and records every route it registers as Fastify's onRoute hook sees them.
 */
export async function registeredRoutes(t: Teardown, root: string, name: ServiceDir): Promise<Route[]> {
  const { app, ConfigSchema } = await serviceModule(root, name)
  const migrations = join(root, 'services', name, 'prisma', 'migrations')
  const prefix = `docs_${name.replace(/-/g, '_')}`
  const shared = existsSync(migrations) ? await sharedResources(t, { prefix, migrations }) : await sharedResources(t, { prefix })
  return recordRoutes(t, app, ConfigSchema, shared, BOOT_ENV[name] ?? {})
}

/** The routes the kit registers in every service: a service with no plugins and no routes of its own. */
export async function kitRoutes(t: Teardown): Promise<Route[]> {
  const bare = defineService<{ config: ServiceConfig }>({ platform: () => ({}), plugins: async () => {}, routes: async () => {} })
  const schema = serviceConfig({ port: 0, schema: 'kit', name: 'kit' }, {})
  return recordRoutes(t, bare, schema, await sharedResources(t, { prefix: 'docs_kit' }), {})
}

async function recordRoutes<O extends AppOptions>(
  t: Teardown,
  app: App<O>,
  configSchema: ConfigSchema,
  shared: Shared,
  env: Record<string, string>
): Promise<Route[]> {
  const routes: Route[] = []
  const record = (r: { method: string | string[]; url: string }) => {
    for (const method of [r.method].flat()) if (!IMPLIED.has(method)) routes.push({ method, path: openApiPath(r.url) })
  }
  const recorded: App<O> = async (fastify, opts) => {
    fastify.addHook('onRoute', record)
    await fastify.register(app, opts)
  }
  await buildService(t, { app: recorded, configSchema, shared, env })
  return routes
}
