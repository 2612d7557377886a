/** The ceiling: a bare Fastify handler that verifies the same JWT and reads the same Redis key. */
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { Redis } from 'ioredis'

const env = process.env
const app = Fastify({ logger: false })
const redis = new Redis(env.REDIS_URL ?? 'redis://127.0.0.1:6379', { keyPrefix: env.REDIS_KEY_PREFIX ?? '' })
redis.on('error', () => {})
await app.register(fastifyJwt, { secret: env.JWT_SECRET ?? '', verify: { algorithms: ['HS256'] } })
app.get('/health', async () => ({ status: 'ok' }))
app.get('/api/v1/sessions/active', async (request, reply) => {
  const { sub } = await request.jwtVerify<{ sub: string }>()
  const id = await redis.getex(`session:active:user:${sub}`, 'EX', 3600)
  if (!id) return reply.code(404).send({ code: 'NO_ACTIVE_SESSION' })
  return { id }
})
await app.listen({ port: Number(env.PORT), host: '127.0.0.1' })
