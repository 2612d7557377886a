import type { FastifyBaseLogger } from 'fastify'
import type { SeqRange } from '../domain/seq-ranges.js'
import type { ChatStore } from '../store/chat-store.js'
import type { LiveBus } from '../plugins/live-bus.js'
import { messageFrame, type Room } from './connection.js'
import { CATCH_UP_PAGE, type GapFiller } from './gap-fill.js'

export interface ResyncDeps {
  rooms: ReadonlyMap<string, Room>
  gaps: GapFiller
  store: Pick<ChatStore, 'range'>
  bus: Pick<LiveBus, 'publish' | 'requeue' | 'takeUnsent' | 'up'>
  log: Pick<FastifyBaseLogger, 'warn' | 'info'>
  draining: () => boolean
  /** Wait before publishing again what could not be read. */
  retryMs: number
}

/**
 * After NATS is back (and has this instance's subscriptions): every open room reads what it may have
 * missed, room after room so a reconnect does not flood the pool, and what this instance persisted
 * but NATS may not have carried is published again for the other instances.
 */
export class Resync {
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly deps: ResyncDeps) {}

  async run(republish: Map<string, SeqRange>): Promise<void> {
    const { rooms, gaps, log } = this.deps
    if (this.deps.draining()) return
    let caughtUp = 0
    for (const room of [...rooms.values()]) {
      if (!room.order.initialized || rooms.get(room.id) !== room) continue
      caughtUp++
      room.behind = true
      gaps.cancel(room)
      await gaps.fill(room)
    }
    const republished = await this.republish(republish)
    if (caughtUp > 0 || republished > 0) log.info({ rooms: caughtUp, republished }, 'chat caught up after NATS reconnected')
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  /** Publishes persisted messages again; a session that cannot be read now is retried later. */
  private async republish(ranges: Map<string, SeqRange>): Promise<number> {
    let sent = 0
    let failed = false
    for (const [chatSessionId, range] of ranges) {
      const outcome = await this.republishSession(chatSessionId, range)
      sent += outcome.sent
      failed ||= !outcome.ok
    }
    if (failed && !this.timer && !this.deps.draining()) {
      this.timer = setTimeout(() => {
        this.timer = null
        // While NATS is down the next reconnect takes them.
        if (this.deps.bus.up) void this.republish(this.deps.bus.takeUnsent())
      }, this.deps.retryMs)
    }
    return sent
  }

  private async republishSession(chatSessionId: string, range: SeqRange): Promise<{ sent: number; ok: boolean }> {
    const { store, bus } = this.deps
    let after = range.after
    let sent = 0
    try {
      while (after < range.upTo) {
        const page = await store.range(chatSessionId, after, range.upTo, CATCH_UP_PAGE)
        for (const m of page) bus.publish(chatSessionId, messageFrame(m))
        sent += page.length
        const last = page.at(-1)
        if (!last || page.length < CATCH_UP_PAGE) break
        after = last.seq
      }
      return { sent, ok: true }
    } catch (err) {
      this.deps.log.warn({ err, chatSessionId }, 'could not read messages to publish again; retrying')
      bus.requeue(chatSessionId, { after, upTo: range.upTo })
      return { sent, ok: false }
    }
  }
}
