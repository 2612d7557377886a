import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ErrorReply, ShortIdParams, TaskIdParams, TaskSession, TaskSessionList, TaskSessionListQuery } from '@platform/contracts'
import { InvalidShortIdError, InvalidTaskIdError } from '../domain/errors.js'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }

/** Bad ids answer with their own code; any other validation failure stays VALIDATION_ERROR. */
function checkInput(request: FastifyRequest, idError: () => Error): void {
  const err = request.validationError as (Error & { validationContext?: string }) | undefined
  if (!err) return
  throw err.validationContext === 'params' ? idError() : err
}

/** Task sessions by short id and by task id (docs/architecture.md). */
export const taskSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const service = fastify.taskSessions
  // Before validation, so an anonymous caller learns nothing about what input is valid.
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get(
    '/api/v1/task-sessions/:shortId',
    {
      attachValidation: true,
      schema: {
        tags: ['task sessions'],
        summary: 'Sessions of a short id, oldest first',
        params: ShortIdParams,
        querystring: TaskSessionListQuery,
        response: { 200: TaskSessionList, ...errors }
      }
    },
    async (request) => {
      checkInput(request, () => new InvalidShortIdError())
      return service.list(request.params.shortId, request.query, request.user)
    }
  )

  fastify.get(
    '/api/v1/task-sessions/task/:taskId',
    {
      attachValidation: true,
      schema: {
        tags: ['task sessions'],
        summary: 'The session of a task',
        params: TaskIdParams,
        response: { 200: TaskSession, 404: ErrorReply, ...errors }
      }
    },
    async (request) => {
      checkInput(request, () => new InvalidTaskIdError())
      return service.get(request.params.taskId, request.user)
    }
  )

  fastify.delete(
    '/api/v1/task-sessions/task/:taskId',
    {
      attachValidation: true,
      schema: {
        tags: ['task sessions'],
        summary: 'Remove the session of a task',
        params: TaskIdParams,
        response: { 204: Type.Null(), 404: ErrorReply, ...errors }
      }
    },
    async (request, reply) => {
      checkInput(request, () => new InvalidTaskIdError())
      await service.remove(request.params.taskId, request.user)
      return reply.code(204).send(null)
    }
  )
}
