/**
 * (f) of bench/gateway: the least a Fastify proxy can do, as a floor for the gateway. One route, one
 * keep-alive undici pool, the upstream's answer buffered and written straight back; no token check,
 * limit, breaker, retry, header hygiene, request id or metrics.
 */
import Fastify from 'fastify'
import { Pool, type Dispatcher } from 'undici'

const pool = new Pool(process.env.UPSTREAM ?? 'http://127.0.0.1:3001', { connections: 128, keepAliveTimeout: 30_000 })
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host'])
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
app.get('/health', async () => ({ status: 'ok' }))
app.get('/api/*', (request, reply) => {
  const headers: Record<string, string> = {}
  for (const name in request.headers) {
    const value = request.headers[name]
    if (typeof value === 'string' && !HOP_BY_HOP.has(name)) headers[name] = value
  }
  reply.hijack()
  let status = 0
  let head: string[] = []
  const chunks: Buffer[] = []
  const handler: Dispatcher.DispatchHandler = {
    onConnect() {},
    onHeaders(statusCode, raw) {
      status = statusCode
      head = []
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]?.toString('latin1').toLowerCase() ?? ''
        if (!HOP_BY_HOP.has(name)) head.push(name, raw[i + 1]?.toString('latin1') ?? '')
      }
      return true
    },
    onData(chunk) {
      chunks.push(chunk)
      return true
    },
    onComplete() {
      reply.raw.writeHead(status, head)
      reply.raw.end(Buffer.concat(chunks))
    },
    onError() {
      reply.raw.writeHead(502)
      reply.raw.end()
    }
  }
  pool.dispatch({ path: request.url, method: 'GET', headers }, handler)
})
// An orderly exit on SIGTERM, so `--cpu-prof` (profile.ts) writes its profile.
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
