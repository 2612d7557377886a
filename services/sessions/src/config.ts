import { Type, type Static } from 'typebox'
import { serviceConfig } from '@platform/kit'

export const ConfigSchema = serviceConfig(
  { port: 3001, schema: 'sessions', name: 'sessions' },
  {
    ACTIVE_SESSION_CACHE_TTL_SECONDS: Type.Integer({ minimum: 1, default: 3600 })
  }
)
export type Config = Static<typeof ConfigSchema>
