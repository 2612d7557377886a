/** (d) of bench/gateway: a bare @fastify/http-proxy in front of the sessions service, no policies at all. */
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'
const port = Number(process.env.PORT)
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
app.get('/health', async () => ({ status: 'ok' }))
await app.register(proxy, { upstream, prefix: '/api', rewritePrefix: '/api' })
// An orderly exit on SIGTERM, so `--cpu-prof` (profile.ts) writes its profile.
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)))
await app.listen({ host: '127.0.0.1', port })
