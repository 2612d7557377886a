import type { FastifyBaseLogger } from 'fastify'
import type { ChatMessage } from '@platform/contracts'
import type { ChatStore } from '../store/chat-store.js'
import { delivery, messageFrame, type Delivery, type Room } from './connection.js'
import { fanOut } from './fan-out.js'
import type { SendText, Tally } from './sender.js'

/** Messages per read when catching up or publishing again after a NATS outage. */
export const CATCH_UP_PAGE = 500

export interface GapFillDeps {
  rooms: ReadonlyMap<string, Room>
  store: Pick<ChatStore, 'range'>
  send: SendText
  log: Pick<FastifyBaseLogger, 'warn'>
  gapFills: Tally
  /** How long a missing seq may wait for its live frame before it is read from Postgres. */
  delayMs: number
}

/**
 * In-order delivery in each room: messages go out in seq order through the room's sequencer, and a
 * seq that does not arrive live in time (or everything after a NATS outage) is read back from Postgres.
 */
export class GapFiller {
  constructor(private readonly deps: GapFillDeps) {}

  /** Delivers what the sequencer lets through now and waits for any gap this leaves. */
  accept(room: Room, d: Delivery): void {
    fanOut(this.deps.send, room, room.order.accept(d))
    this.schedule(room)
  }

  /** A seq is missing: wait briefly for its live frame, then read it from Postgres. */
  schedule(room: Room, delay = this.deps.delayMs): void {
    if (!room.order.initialized || !(room.order.hasGap || room.behind) || room.gapTimer) return
    room.gapTimer = setTimeout(() => {
      room.gapTimer = null
      void this.fill(room)
    }, delay)
  }

  cancel(room: Room): void {
    if (room.gapTimer) clearTimeout(room.gapTimer)
    room.gapTimer = null
  }

  async fill(room: Room): Promise<void> {
    if (!this.isCurrent(room) || !(room.order.hasGap || room.behind)) return
    const behind = room.behind
    try {
      this.deps.gapFills.inc()
      if (behind) {
        room.behind = false
        await this.readAfter(room)
      } else {
        const missing = await this.deps.store.range(room.id, room.order.last, room.order.highest)
        for (const m of missing) this.catchUp(room, m)
        // Postgres has every seq below one that was delivered, so what is still missing does not exist.
        if (room.order.hasGap) fanOut(this.deps.send, room, room.order.skipGap())
      }
    } catch (err) {
      if (behind) room.behind = true
      this.deps.log.warn({ err, chatSessionId: room.id }, 'could not read missing messages; retrying')
      this.schedule(room, this.deps.delayMs * 10)
    }
  }

  /**
   * Everything Postgres has after the last seq the room delivered, page by page: after a NATS outage
   * nothing may have arrived live to reveal a gap.
   */
  private async readAfter(room: Room): Promise<void> {
    let after = room.order.last
    for (;;) {
      const page = await this.deps.store.range(room.id, after, null, CATCH_UP_PAGE)
      for (const m of page) this.catchUp(room, m)
      const last = page.at(-1)
      if (!last || page.length < CATCH_UP_PAGE || !this.isCurrent(room)) break
      after = last.seq
    }
    // Live frames that came in meanwhile past what was read wait for their gap as usual.
    this.schedule(room)
  }

  private catchUp(room: Room, m: ChatMessage): void {
    fanOut(this.deps.send, room, room.order.accept(delivery(messageFrame(m))))
  }

  private isCurrent(room: Room): boolean {
    return this.deps.rooms.get(room.id) === room
  }
}
