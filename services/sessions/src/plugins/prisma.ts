import { prismaPlugin as kitPrismaPlugin } from '@platform/kit'
import { PrismaClient } from '../generated/prisma/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient
  }
}

// Writes serialize per user (advisory lock): give queued transactions time instead of failing under load.
export const prismaPlugin = kitPrismaPlugin((adapter) => new PrismaClient({ adapter, transactionOptions: { maxWait: 10_000, timeout: 15_000 } }))
