import fp from 'fastify-plugin'
import { Redis, type Command, type RedisOptions as ClientOptions } from 'ioredis'
import { waitUntil } from '../wait.js'

export interface RedisOptions {
  url: string
  keyPrefix: string
  commandTimeoutMs: number
  /** Batch the commands of one event-loop tick into one write: for hot paths with many concurrent requests. */
  autoPipelining?: boolean
  /** Consecutive command timeouts after which the connection is dropped and Redis counts as down [3]. */
  failureThreshold?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Commands fail at once while Redis is down (no offline queue): callers degrade instead of waiting. */
    redis: Redis
  }
}

/** Emitted (as 'error') when a connection is dropped because Redis stopped answering. */
export class RedisUnresponsiveError extends Error {
  readonly code = 'REDIS_UNRESPONSIVE'
  constructor(readonly timeouts: number) {
    super(`Redis did not answer ${timeouts} commands in a row: connection dropped, reconnecting`)
    this.name = 'RedisUnresponsiveError'
  }
}

/**
 * A Redis that accepts connections but never answers (a stopped or wedged server) is not an error
 * ioredis sees: every command would wait its full timeout while `status` stays 'ready'. After
 * `threshold` consecutive timeouts on one connection this client drops it, so `status` leaves
 * 'ready' (the one signal callers check) and commands fail at once. The reconnect is the probe: its
 * handshake (CLIENT SETINFO, then the INFO ready check) runs under the same command timeout, so on a
 * frozen server it fails and retries at most once a second, and the first handshake the server
 * answers makes the client 'ready' again.
 */
class FailFastRedis extends Redis {
  private timeouts = 0
  private tripped = false
  /** Counts connections that became ready: a timeout from an older one says nothing about this one. */
  private epoch = 0

  constructor(
    url: string,
    options: ClientOptions,
    private readonly threshold: number
  ) {
    super(url, options)
    this.on('ready', () => {
      this.epoch++
      this.timeouts = 0
      this.tripped = false
    })
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    const result = super.sendCommand(command, stream)
    const epoch = this.epoch
    command.promise.then(
      () => {
        if (epoch === this.epoch) this.timeouts = 0
      },
      (err: Error) => this.failed(err, epoch)
    )
    return result
  }

  private failed(err: Error, epoch: number): void {
    if (epoch !== this.epoch || this.status !== 'ready') return
    // A reply error (WRONGTYPE, a Lua error...) is an answer: the server is alive.
    if (err.name === 'ReplyError') this.timeouts = 0
    if (err.message !== 'Command timed out' || this.tripped) return
    if (++this.timeouts < this.threshold) return
    this.tripped = true
    this.emit('error', new RedisUnresponsiveError(this.timeouts))
    this.disconnect(true)
  }
}

export function createRedis(opts: RedisOptions, onError: (err: Error) => void = () => {}): Redis {
  const redis = new FailFastRedis(
    opts.url,
    {
      keyPrefix: opts.keyPrefix,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs,
      enableAutoPipelining: opts.autoPipelining ?? false,
      // Covers the TCP connect only; a server that accepts but never answers is caught by the
      // command timeout, which also bounds the handshake.
      connectTimeout: 2000,
      // A dropped connection to an unresponsive server is half-closed and waits for a FIN that never
      // comes: close it for good soon, so `status` leaves 'ready' at once.
      disconnectTimeout: 100,
      // Callers gave up on a command when it timed out: never send it again on the next connection.
      autoResendUnfulfilledCommands: false,
      // At most one attempt a second, so Redis is back in use within about a second of answering.
      retryStrategy: (times) => Math.min(times * 200, 1000)
    },
    opts.failureThreshold ?? 3
  )
  redis.on('error', onError)
  return redis
}

export const redisPlugin = fp<RedisOptions>(
  async (fastify, opts) => {
    let lastError = ''
    const redis = createRedis(opts, (err) => {
      // One line per distinct failure, not one per reconnect attempt.
      if (err.message !== lastError) fastify.log.warn({ err }, 'redis error')
      lastError = err.message
    })
    redis.on('ready', () => {
      if (lastError) fastify.log.info('redis reconnected')
      lastError = ''
    })
    fastify.decorate('redis', redis)
    // Start ready when Redis is there, but never wait long: the service works without it.
    await waitUntil(new Promise((resolve) => redis.once('ready', resolve)), 2000)
    fastify.readiness.add('redis', { required: false, check: () => (redis.status === 'ready' ? 'up' : 'down') })
    fastify.addHook('onClose', async () => {
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
    })
  },
  { name: 'platform-redis', fastify: '5.x', dependencies: ['platform-health'] }
)
