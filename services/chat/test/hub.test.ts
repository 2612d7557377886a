import t from 'tap'
import { WebSocket } from 'ws'
import type { ChatMessage } from '@platform/contracts'
import { anonymousIdentity } from '../src/domain/identity.js'
import { Connection, Room, delivery, messageFrame, type ChatSocket } from '../src/hub/connection.js'
import { fanOut } from '../src/hub/fan-out.js'
import { GapFiller } from '../src/hub/gap-fill.js'
import { heartbeat } from '../src/hub/heartbeat.js'
import { FrameSender } from '../src/hub/sender.js'
import type { Frame } from './helper.js'

/** A socket that records what the hub does with it. */
class FakeSocket implements ChatSocket {
  readyState: WebSocket['readyState'] = WebSocket.OPEN
  bufferedAmount = 0
  readonly sent: Frame[] = []
  closedWith: [number | undefined, unknown] | null = null
  terminated = false
  pings = 0

  send(data: unknown): void {
    this.sent.push(JSON.parse(String(data)))
  }

  close(code?: number, reason?: unknown): void {
    this.closedWith = [code, reason]
  }

  terminate(): void {
    this.terminated = true
  }

  ping(): void {
    this.pings++
  }
}

const log = { warn: () => {} }
const tally = () => ({
  n: 0,
  inc() {
    this.n++
  }
})
const connection = (id: string, ws: ChatSocket) => new Connection(id, ws, anonymousIdentity(id))

const message = (seq: number): ChatMessage => ({
  id: String(100 + seq),
  chatSessionId: '00000000-0000-4000-8000-000000000001',
  seq,
  sender: 'user',
  content: `m${seq}`,
  metadata: {},
  processingMs: null,
  createdAt: new Date(0).toISOString()
})

t.test('a connection whose unsent buffer passes the limit is closed with 4008; a closing one gets nothing', async (t) => {
  const ws = new FakeSocket()
  const conn = connection('c1', ws)
  const slow = tally()
  const sender = new FrameSender(log, 1000, slow)
  sender.error(conn, 'RATE_LIMITED', 'slow down', 'r1', 1000)
  t.strictSame(ws.sent, [{ type: 'error', code: 'RATE_LIMITED', message: 'slow down', retryable: true, retryAfterMs: 1000, ref: 'r1' }])
  t.equal(ws.closedWith, null)
  ws.bufferedAmount = 1001
  sender.send(conn, { type: 'typing', chatSessionId: 's', userId: 'u1', isTyping: true })
  t.strictSame(ws.closedWith, [4008, 'slow consumer'])
  t.equal(slow.n, 1)
  ws.readyState = WebSocket.CLOSING
  sender.error(conn, 'INTERNAL_ERROR', 'late')
  t.equal(ws.sent.length, 2, 'nothing is sent once the socket is closing')
})

t.test('messages reach a room in seq order, each once; a missing one is read back from the store', async (t) => {
  const ws = new FakeSocket()
  const conn = connection('c1', ws)
  const room = new Room('s1')
  const rooms = new Map([[room.id, room]])
  conn.room = room
  conn.ready = true
  room.conns.add(conn)
  const stored = [1, 2, 3, 4].map(message)
  const reads: Array<[number, number | null | undefined]> = []
  const store = {
    async range(_id: string, after: number, upTo?: number | null) {
      reads.push([after, upTo])
      return stored.filter((m) => m.seq > after && (upTo === null || upTo === undefined || m.seq <= upTo))
    }
  }
  const fills = tally()
  const send = new FrameSender(log, 1 << 20, tally()).sendText
  // Long enough that the timer never fires: the test runs the fill itself.
  const gaps = new GapFiller({ rooms, store, send, log, gapFills: fills, delayMs: 3_600_000 })
  const seqs = () => ws.sent.map((f) => f.seq)

  fanOut(send, room, room.order.init(0))
  gaps.accept(room, delivery(messageFrame(message(2))))
  t.strictSame(seqs(), [], 'seq 2 waits for seq 1')
  gaps.accept(room, delivery(messageFrame(message(1))))
  t.strictSame(seqs(), [1, 2])
  gaps.accept(room, delivery(messageFrame(message(1))))
  gaps.accept(room, delivery(messageFrame(message(4))))
  t.strictSame(seqs(), [1, 2], 'a duplicate is dropped; seq 4 waits for seq 3')
  t.ok(room.gapTimer, 'a read of the gap is scheduled')
  gaps.cancel(room)
  await gaps.fill(room)
  t.strictSame(reads, [[2, 4]], 'only the gap is read')
  t.strictSame(seqs(), [1, 2, 3, 4])
  t.equal(fills.n, 1)
  t.equal(room.gapTimer, null)
})

t.test('the heartbeat closes an expired token with 4401, drops a peer that missed its pong, pings the rest', async (t) => {
  const now = 1_000_000
  const [expiredWs, silentWs, liveWs] = [new FakeSocket(), new FakeSocket(), new FakeSocket()]
  const expired = new Connection('e', expiredWs, { ...anonymousIdentity('e'), expiresAt: now })
  const silent = connection('s', silentWs)
  silent.alive = false
  const live = connection('l', liveWs)
  const dropped: string[] = []
  heartbeat([expired, silent, live], now, (c) => dropped.push(c.id))
  t.strictSame(expiredWs.closedWith, [4401, 'TOKEN_EXPIRED'])
  t.ok(silentWs.terminated)
  t.strictSame(dropped, ['s'])
  t.equal(liveWs.pings, 1)
  t.equal(live.alive, false, 'alive again only when its pong comes')
})
