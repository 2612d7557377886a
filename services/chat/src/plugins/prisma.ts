import fp from 'fastify-plugin'
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from '../generated/prisma/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient
  }
}

/** Prisma on the kit's pg pool, in the schema this instance was configured with. */
export const prismaPlugin = fp(
  async (fastify) => {
    const adapter = new PrismaPg(fastify.db.pool, { schema: fastify.db.schema })
    const prisma = new PrismaClient({ adapter })
    fastify.decorate('prisma', prisma)
    fastify.addHook('onClose', async () => {
      await prisma.$disconnect()
    })
  },
  { name: 'prisma', dependencies: ['platform-db'] }
)
