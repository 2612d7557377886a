import { runService } from '@platform/kit'
import { ConfigSchema } from './config.js'
import { app } from './app.js'

await runService(ConfigSchema, app)
