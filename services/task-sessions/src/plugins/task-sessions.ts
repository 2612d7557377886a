import fp from 'fastify-plugin'
import type { TaskSession as TaskSessionDto, TaskSessionList, TaskSessionListQuery } from '@platform/contracts'
import { keyset, keysetPage, type Principal } from '@platform/kit'
import type { Prisma, PrismaClient, TaskSession } from '../generated/prisma/client.js'
import type { TaskStore } from './task-store.js'
import { TaskSessionNotFoundError } from '../domain/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    taskSessions: TaskSessionService
  }
}

export interface TaskSessionService {
  list(shortId: string, query: TaskSessionListQuery, caller: Principal): Promise<TaskSessionList>
  get(taskId: string, caller: Principal): Promise<TaskSessionDto>
  remove(taskId: string, caller: Principal): Promise<void>
}

/** Admins and services see every session; a user only those carrying their own user id. */
export const seesAll = (caller: Principal) => caller.roles.includes('admin') || caller.roles.includes('service')
const visibleTo = (caller: Principal, userId: string | null) => seesAll(caller) || userId === caller.sub

export function toDto(s: TaskSession): TaskSessionDto {
  return {
    taskId: s.taskId,
    shortId: s.shortId,
    taskType: s.taskType,
    userId: s.userId,
    status: s.status,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString()
  }
}

/** What the service uses: Prisma for reads, the task store for writes. */
export interface TaskSessionDeps {
  prisma: PrismaClient
  taskStore: Pick<TaskStore, 'remove'>
}

/** Reads through Prisma; writes go through the task store, which serializes them with the event consumer. */
export function createTaskSessions({ prisma, taskStore }: TaskSessionDeps): TaskSessionService {
  return {
    list: (shortId, query, caller) => list(prisma, shortId, query, caller),
    async get(taskId, caller) {
      const s = await prisma.taskSession.findUnique({ where: { taskId } })
      // Someone else's session answers exactly like a missing one: its existence is not disclosed.
      if (!s || !visibleTo(caller, s.userId)) throw new TaskSessionNotFoundError(taskId)
      return toDto(s)
    },
    async remove(taskId, caller) {
      if (!(await taskStore.remove(taskId, (s) => visibleTo(caller, s.userId)))) throw new TaskSessionNotFoundError(taskId)
    }
  }
}

/** A short id's sessions the caller may see, oldest first, with their total. */
async function list(prisma: PrismaClient, shortId: string, query: TaskSessionListQuery, caller: Principal): Promise<TaskSessionList> {
  const { taskType, status, limit = 20, cursor } = query
  const where: Prisma.TaskSessionWhereInput = {
    shortId,
    ...(taskType ? { taskType } : {}),
    ...(status ? { status } : {}),
    ...(seesAll(caller) ? {} : { userId: caller.sub })
  }
  const k = keyset(cursor, limit, 'asc', 'serial')
  const [rows, totalSessions] = await Promise.all([
    prisma.taskSession.findMany({ where: { ...where, ...k.where }, orderBy: k.orderBy, take: k.take }),
    prisma.taskSession.count({ where })
  ])
  const { page, nextCursor } = keysetPage(rows, limit)
  return { shortId, sessions: page.map(toDto), totalSessions, nextCursor, timestamp: new Date().toISOString() }
}

export const taskSessionsPlugin = fp(
  async (fastify) => {
    fastify.decorate('taskSessions', createTaskSessions({ prisma: fastify.prisma, taskStore: fastify.taskStore }))
  },
  { name: 'task-sessions', dependencies: ['prisma', 'task-store'] }
)
