import fp from 'fastify-plugin'
import { TaskEventDataSchemas, Streams } from '@platform/contracts'
import { createEventConsumer, type EventConsumer } from '@platform/kit'
import type { Config } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The TASKS stream consumer; null when TASK_EVENTS_ENABLED=false. */
    taskEvents: EventConsumer | null
  }
}

/** Feeds task lifecycle events from JetStream to the task store, one transaction per pulled batch. */
export const taskEventsPlugin = fp<{ config: Config }>(
  async (fastify, { config }) => {
    if (!config.TASK_EVENTS_ENABLED) {
      fastify.decorate('taskEvents', null)
      return
    }
    const consumer = createEventConsumer(fastify, {
      stream: 'tasks',
      durable: config.TASK_EVENTS_DURABLE,
      filterSubject: Streams.tasks.subjects[0],
      types: TaskEventDataSchemas,
      batchSize: config.TASK_EVENTS_BATCH_SIZE,
      maxAckPending: config.TASK_EVENTS_MAX_ACK_PENDING,
      maxDeliveries: config.TASK_EVENTS_MAX_DELIVERIES,
      ackWaitMs: config.TASK_EVENTS_ACK_WAIT_MS,
      backoffMs: config.TASK_EVENTS_BACKOFF_MS,
      maxBackoffMs: config.TASK_EVENTS_MAX_BACKOFF_MS,
      handle: async (items) => {
        await fastify.taskStore.apply(items.map((i) => i.event))
      }
    })
    fastify.decorate('taskEvents', consumer)
  },
  { name: 'task-events', dependencies: ['task-store', 'platform-nats'] }
)
