/** (d) of bench/gateway: a bare @fastify/http-proxy in front of the sessions service, no policies at all. */
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const upstream = process.env.UPSTREAM as string
const port = Number(process.env.PORT)
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
app.get('/health', async () => ({ status: 'ok' }))
await app.register(proxy, { upstream, prefix: '/api', rewritePrefix: '/api' })
await app.listen({ host: '127.0.0.1', port })
