import Fastify, { type FastifyPluginAsync } from 'fastify'
import closeWithGrace from 'close-with-grace'
import type { Static, TObject } from 'typebox'
import { ConfigError, DEV_JWT_SECRET, loadConfig, type BaseConfig } from './config.js'
import { fastifyOptions } from './server-options.js'

export type ServiceConfig = BaseConfig & { SERVICE_NAME: string; PORT: number; DATABASE_SCHEMA: string }

/** The JWT secret to verify with: the configured one, or the development default outside production. */
export function jwtSecret(config: Pick<BaseConfig, 'JWT_SECRET' | 'NODE_ENV'>): string {
  if (config.JWT_SECRET) return config.JWT_SECRET
  if (config.NODE_ENV === 'production') throw new ConfigError(['JWT_SECRET: must be set when NODE_ENV=production'])
  return DEV_JWT_SECRET
}

/**
 * What every src/server.ts does: validate config (exit 1 naming the bad variable), build Fastify
 * with the shared options, register the app (exit 1 on a rule across variables), shut down gracefully on SIGINT/SIGTERM, listen.
 */
export async function runService<S extends TObject>(schema: S, app: FastifyPluginAsync<{ config: Static<S> }>): Promise<void> {
  let config: Static<S> & ServiceConfig
  try {
    config = loadConfig(schema) as Static<S> & ServiceConfig
    jwtSecret(config)
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err))
    process.exit(1)
  }
  const fastify = Fastify(fastifyOptions(config))
  if (!config.JWT_SECRET) fastify.log.warn('JWT_SECRET is unset: using the development secret (never do this in production)')
  try {
    await fastify.register(app, { config })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }

  closeWithGrace({ delay: 15_000 }, async ({ signal, err }) => {
    if (err) fastify.log.error({ err }, 'shutting down after an error')
    else fastify.log.info({ signal }, 'shutting down')
    await fastify.close()
  })
  await fastify.listen({ host: config.HOST, port: config.PORT })
}
