import fp from 'fastify-plugin'
import type { TaskSession as TaskSessionDto, TaskSessionList, TaskSessionListQuery } from '@platform/contracts'
import type { Principal } from '@platform/kit'
import type { Prisma, TaskSession } from '../generated/prisma/client.js'
import { decodeSerialCursor as decodeCursor, encodeCursor } from '@platform/kit'
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

/** Reads through Prisma; writes go through the task store, which serializes them with the event consumer. */
export const taskSessionsPlugin = fp(
  async (fastify) => {
    const { prisma, taskStore } = fastify

    const service: TaskSessionService = {
      async list(shortId, { taskType, status, limit = 20, cursor }, caller) {
        const after = cursor ? decodeCursor(cursor) : null
        const where: Prisma.TaskSessionWhereInput = {
          shortId,
          ...(taskType ? { taskType } : {}),
          ...(status ? { status } : {}),
          ...(seesAll(caller) ? {} : { userId: caller.sub })
        }
        const [rows, totalSessions] = await Promise.all([
          prisma.taskSession.findMany({
            where: after
              ? { ...where, OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }] }
              : where,
            orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
            take: limit + 1
          }),
          prisma.taskSession.count({ where })
        ])
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return {
          shortId,
          sessions: page.map(toDto),
          totalSessions,
          nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
          timestamp: new Date().toISOString()
        }
      },

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
    fastify.decorate('taskSessions', service)
  },
  { name: 'task-sessions', dependencies: ['prisma', 'task-store'] }
)
