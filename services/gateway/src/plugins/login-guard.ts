import fp from 'fastify-plugin'
import type { preHandlerHookHandler } from 'fastify'
import { Counter } from 'prom-client'
import { createLoginGuard, type LoginGuardOptions } from '../login-guard/guard.js'
import { createSessionsClient } from '../login-guard/sessions-client.js'
import { LoginStates } from '../login-guard/touch.js'

export type { LoginGuardOptions } from '../login-guard/guard.js'

declare module 'fastify' {
  interface FastifyInstance {
    loginGuard: { hook: preHandlerHookHandler; flush(): Promise<void> }
  }
}

/**
 * The login-session guard (login-guard/guard.ts) as a preHandler of the proxied routes, with its metric and
 * its timers: counts to Redis and activity to the sessions service every second, idle state swept every minute.
 */
export const loginGuardPlugin = fp<LoginGuardOptions>(
  async (fastify, opts) => {
    const guard = createLoginGuard({
      // The state's TTL outlives the inactivity timeout: an inactive session is still found, and ended.
      states: new LoginStates(fastify.redis, opts.flushSeconds * 1000, opts.inactivitySeconds + 60),
      sessions: createSessionsClient({ service: fastify.upstreams.get('sessions'), timeoutMs: opts.timeoutMs, jwt: opts.jwt, log: fastify.log }),
      rejections: new Counter({
        name: 'gateway_login_guard_rejections_total',
        help: 'Requests the login-session guard refused, by code',
        labelNames: ['code'] as const,
        registers: [fastify.metrics]
      }),
      log: fastify.log,
      opts
    })

    // Callback-style: a request of a session seen moments ago passes without a promise.
    const hook: preHandlerHookHandler = (request, reply, done) => {
      let pending: Promise<void> | undefined
      try {
        pending = guard.check(request, reply)
      } catch (err) {
        return done(err instanceof Error ? err : new Error(String(err)))
      }
      if (pending === undefined) return done()
      pending.then(() => done(), done)
    }

    // tick() logs its own failures (activity is kept for the next tick).
    const timer = setInterval(() => void guard.tick(), 1000)
    timer.unref()
    const sweeper = setInterval(() => guard.sweep(), 60_000)
    sweeper.unref()

    fastify.decorate('loginGuard', { hook, flush: () => guard.flush() })
    fastify.addHook('onClose', async () => {
      clearInterval(timer)
      clearInterval(sweeper)
      await guard.flush()
    })
  },
  { name: 'login-guard', dependencies: ['platform-redis', 'upstreams'] }
)
