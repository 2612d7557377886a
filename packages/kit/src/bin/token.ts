/**
 * `pnpm run token --sub u1 [--roles user,admin] [--sid id] [--ttl 1h]`: prints a development JWT.
 * (`pnpm token` without `run` is npm's own token command, which pnpm hands to npm.)
 */
import { parseArgs } from 'node:util'
import { Type } from 'typebox'
import { BaseConfigProperties, DEV_JWT_SECRET, loadConfig } from '../config.js'
import { signToken, parseTtl } from '../token.js'

function claims() {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      roles: { type: 'string', default: 'user' },
      sid: { type: 'string' },
      ttl: { type: 'string', default: '1h' }
    }
  })
  if (!values.sub) throw new Error('--sub is required')
  return {
    sub: values.sub,
    roles: values.roles
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean),
    ...(values.sid ? { sid: values.sid } : {}),
    ttlSeconds: parseTtl(values.ttl)
  }
}

try {
  const config = loadConfig(
    Type.Object({
      JWT_SECRET: BaseConfigProperties.JWT_SECRET,
      JWT_ISSUER: BaseConfigProperties.JWT_ISSUER,
      JWT_AUDIENCE: BaseConfigProperties.JWT_AUDIENCE
    })
  )
  const token = signToken(claims(), { secret: config.JWT_SECRET ?? DEV_JWT_SECRET, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE })
  if (!config.JWT_SECRET) console.error('warning: JWT_SECRET is unset; signing with the development secret')
  process.stdout.write(`${token}\n`)
} catch (err) {
  console.error(
    `${err instanceof Error ? err.message : String(err)}\nusage: pnpm run token --sub <user> [--roles user,admin] [--sid <id>] [--ttl 1h]`
  )
  process.exit(2)
}
