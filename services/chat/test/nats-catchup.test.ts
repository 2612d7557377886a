import t, { type Test } from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import { startNatsServer, startTcpProxy, waitFor } from '@platform/kit/testing'
import { build, clients, shared, type Client, type Frame } from './helper.js'

const quiet = { ASSISTANT_ENABLED: 'false', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' }
/** Generous: CI runs on a busy 2-core machine. */
const LONG = 20_000
const count = (c: Client) => c.frames.filter((f) => f.type === 'message').length

/** Waits (generously) until the client has `n` message frames and takes them. */
async function messages(c: Client, n: number, timeoutMs = LONG): Promise<Frame[]> {
  await waitFor(() => count(c) >= n, timeoutMs)
  return c.drain('message')
}

/** Two instances sharing Postgres and a NATS server of the test's own, a client of one session on each. */
async function pair(t: Test, natsUrls: { one: string; two: string }) {
  const s = await shared(t)
  const one = await build(t, { ...quiet, NATS_URL: natsUrls.one }, s)
  const two = await build(t, { ...quiet, NATS_URL: natsUrls.two }, s)
  const open = clients(t)
  const a = await open(one.wsUrl, 'u1')
  const b = await open(two.wsUrl, 'u1')
  const { chatSessionId } = await a.request({ type: 'session_init' }, LONG)
  await b.request({ type: 'session_init', chatSessionId }, LONG)
  const before = await a.request({ type: 'message', content: 'before' }, LONG)
  t.equal((await b.next('message', LONG)).id, before.id, 'live fan-out works before the outage')
  return { one, two, a, b }
}

/** What B writes during an outage: exactly these reach A afterwards, in seq order, and nothing twice. */
async function writeDuring(t: Test, b: Client): Promise<Frame[]> {
  const written: Frame[] = []
  for (const content of ['down 1', 'down 2', 'down 3']) written.push(await b.request({ type: 'message', content }, LONG))
  t.strictSame(
    written.map((f) => f.seq),
    [2, 3, 4]
  )
  return written
}

async function expectCaughtUp(t: Test, a: Client, b: Client, written: Frame[], live: { one: () => boolean; two: () => boolean }, timeoutMs = LONG) {
  const got = await messages(a, written.length, timeoutMs)
  t.strictSame(
    got.map((f) => f.id),
    written.map((f) => f.id),
    'A got exactly what B wrote meanwhile, without a new write'
  )
  t.strictSame(
    got.map((f) => f.seq),
    [2, 3, 4],
    'in seq order'
  )
  await waitFor(() => live.one() && live.two(), LONG)
  const after = await b.request({ type: 'message', content: 'after' }, LONG)
  const next = await a.next('message', LONG)
  t.equal(next.id, after.id, 'live fan-out works again')
  t.equal(next.seq, 5)
  t.strictSame(a.drain('message'), [], 'no duplicates on A')
  t.strictSame(b.drain('message'), [], 'no duplicates on B')
}

t.test('after a NATS outage each instance catches its open rooms up from Postgres, without a new write', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { one, two, a, b } = await pair(t, { one: nats.url, two: nats.url })

  await nats.stop()
  await waitFor(() => !one.app.nats.connected && !two.app.nats.connected, LONG)
  const written = await writeDuring(t, b)
  await nats.start()
  await expectCaughtUp(t, a, b, written, { one: () => one.app.nats.connected, two: () => two.app.nats.connected })
})

t.test('a reader catches up by itself, even when the instance that wrote is gone before NATS is back', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const { one, two, a, b } = await pair(t, { one: nats.url, two: nats.url })

  await nats.stop()
  await waitFor(() => !one.app.nats.connected && !two.app.nats.connected, LONG)
  const written = await writeDuring(t, b)
  // Instance two cannot publish them again: what reaches A is A's own read from Postgres.
  b.ws.terminate()
  await two.close()
  await nats.start()
  const got = await messages(a, written.length)
  t.strictSame(
    got.map((f) => f.id),
    written.map((f) => f.id),
    'exactly what was written meanwhile'
  )
  t.strictSame(
    got.map((f) => f.seq),
    [2, 3, 4],
    'in seq order'
  )
  await waitFor(() => one.app.nats.connected, LONG)
  const after = await a.request({ type: 'message', content: 'after' }, LONG)
  t.equal(after.seq, 5)
  t.strictSame(a.drain('message'), [], 'nothing twice')
})

t.test('what one instance wrote while only it was cut off from NATS reaches the others after it reconnects', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const proxy = await startTcpProxy(nats.port)
  t.teardown(() => proxy.close())
  const { one, two, a, b } = await pair(t, { one: nats.url, two: `nats://127.0.0.1:${proxy.port}` })

  proxy.cut()
  await waitFor(() => !two.app.nats.connected, LONG)
  t.equal(one.app.nats.connected, true, 'instance one never lost NATS, so it has nothing to catch up on its own')
  const written = await writeDuring(t, b)
  proxy.restore()
  await expectCaughtUp(t, a, b, written, { one: () => one.app.nats.connected, two: () => two.app.nats.connected })
})

/** A TCP proxy whose open connections can be silenced: bytes vanish, nothing is closed (a network partition). */
async function startStallingProxy(targetPort: number) {
  const pairs = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>()
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    const p = { client, upstream, stalled: false }
    pairs.add(p)
    client.on('data', (d) => void (p.stalled || upstream.write(d)))
    upstream.on('data', (d) => void (p.stalled || client.write(d)))
    const drop = () => {
      client.destroy()
      upstream.destroy()
      pairs.delete(p)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('the stalling proxy listens on TCP')
  return {
    port: address.port,
    /** Existing connections go silent; new ones pass. */
    stall: () => {
      for (const p of pairs) p.stalled = true
    },
    close: () =>
      new Promise<void>((r) => {
        for (const p of pairs) {
          p.client.destroy()
          p.upstream.destroy()
        }
        server.close(() => r())
      })
  }
}

t.test('messages published into a connection that died unnoticed are published again after the reconnect', async (t) => {
  const nats = await startNatsServer()
  t.teardown(() => nats.dispose())
  const proxy = await startStallingProxy(nats.port)
  t.teardown(() => proxy.close())
  const { one, two, a, b } = await pair(t, { one: nats.url, two: `nats://127.0.0.1:${proxy.port}` })

  proxy.stall()
  // Instance two still believes it is connected: its publications vanish until its pings time out.
  const written = await writeDuring(t, b)
  t.equal(two.app.nats.connected, true, 'the dead connection was not noticed yet')
  t.equal(count(a), 0)
  // nats.js notices after two unanswered pings (5 s apart), up to 20 s after the stall.
  await expectCaughtUp(t, a, b, written, { one: () => one.app.nats.connected, two: () => two.app.nats.connected }, 45_000)
})
