import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ErrorReply, ShortIdParams, TaskIdParams, TaskSession, TaskSessionList, TaskSessionListQuery } from '@platform/contracts'
import { InvalidShortIdError, InvalidTaskIdError } from '../domain/errors.js'

type Api = Parameters<FastifyPluginAsyncTypebox>[0]

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const tags = ['task sessions']

/** Bad ids answer with their own code; any other validation failure stays VALIDATION_ERROR. */
function checkInput(request: FastifyRequest, idError: () => Error): void {
  const err = request.validationError
  if (!err) return
  throw err.validationContext === 'params' ? idError() : err
}

/** Task sessions by short id and by task id (docs/architecture.md). */
export const taskSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  // Before validation, so an anonymous caller learns nothing about what input is valid.
  fastify.addHook('onRequest', fastify.authenticate)
  listByShortId(fastify)
  getByTaskId(fastify)
  removeByTaskId(fastify)
}

function listByShortId(fastify: Api) {
  const schema = {
    tags,
    summary: 'Sessions of a short id, oldest first',
    params: ShortIdParams,
    querystring: TaskSessionListQuery,
    response: { 200: TaskSessionList, ...errors }
  }
  fastify.get('/api/v1/task-sessions/:shortId', { attachValidation: true, schema }, async (request) => {
    checkInput(request, () => new InvalidShortIdError())
    return fastify.taskSessions.list(request.params.shortId, request.query, request.user)
  })
}

function getByTaskId(fastify: Api) {
  const schema = { tags, summary: 'The session of a task', params: TaskIdParams, response: { 200: TaskSession, 404: ErrorReply, ...errors } }
  fastify.get('/api/v1/task-sessions/task/:taskId', { attachValidation: true, schema }, async (request) => {
    checkInput(request, () => new InvalidTaskIdError())
    return fastify.taskSessions.get(request.params.taskId, request.user)
  })
}

function removeByTaskId(fastify: Api) {
  const schema = { tags, summary: 'Remove the session of a task', params: TaskIdParams, response: { 204: Type.Null(), 404: ErrorReply, ...errors } }
  fastify.delete('/api/v1/task-sessions/task/:taskId', { attachValidation: true, schema }, async (request, reply) => {
    checkInput(request, () => new InvalidTaskIdError())
    await fastify.taskSessions.remove(request.params.taskId, request.user)
    return reply.code(204).send(null)
  })
}
