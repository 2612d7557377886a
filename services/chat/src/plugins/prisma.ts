import { prismaPlugin as kitPrismaPlugin } from '@platform/kit'
import { PrismaClient } from '../generated/prisma/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient
  }
}

export const prismaPlugin = kitPrismaPlugin((adapter) => new PrismaClient({ adapter }))
