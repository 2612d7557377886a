import fp from 'fastify-plugin'
import { PrismaPg } from '@prisma/adapter-pg'

/**
 * The named plugin that puts a service's own Prisma client on `fastify.prisma`, on the kit's pg
 * pool and in the schema this instance was configured with. Each service declares the property's
 * type (its generated client) and passes how to build it.
 */
export function prismaPlugin<C extends { $disconnect(): Promise<void> }>(create: (adapter: PrismaPg) => C) {
  return fp(
    async (fastify) => {
      const prisma = create(new PrismaPg(fastify.db.pool, { schema: fastify.db.schema }))
      // The property's type is the service's own client, declared by the service.
      fastify.decorate('prisma', prisma as never)
      fastify.addHook('onClose', async () => {
        await prisma.$disconnect()
      })
    },
    { name: 'prisma', dependencies: ['platform-db'] }
  )
}
