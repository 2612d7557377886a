import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { createNatsClient } from '../src/index.js'
import { startNatsServer, uniqueName, waitFor } from '../src/testing/index.js'

// The NATS client without Fastify, against servers of the tests' own that they stop and start.

const log = pino({ level: 'silent' })

t.test('onConnect listeners run on the first connect and after every reconnect, with the streams ensured each time', async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.dispose())
  const ns = uniqueName('kn')
  const nats = createNatsClient({ url: server.url, namespace: ns, name: 'kit-nats-test', streams: ['tasks'] }, log)
  t.teardown(() => nats.close())
  const seen: string[][] = []
  nats.onConnect(async (nc) => {
    const jsm = await nats.jsm()
    const names: string[] = []
    for await (const s of jsm.streams.list()) names.push(s.config.name)
    seen.push([nc.getServer(), ...names])
  })
  await nats.connect()
  const where = new URL(server.url).host
  t.same(seen, [[where, nats.streamName('tasks')]])
  t.ok(nats.connected)
  t.equal(nats.subject('tasks.created'), `${ns}.tasks.created`)

  await server.stop()
  await waitFor(() => !nats.connected)
  await server.start()
  await waitFor(() => seen.length === 2, 20_000)
  t.same(seen[1], [where, nats.streamName('tasks')])
  t.ok(nats.connected)
  t.equal(seen.length, 2, 'once per connect')
})

t.test('a client started while NATS is down does not fail: it connects once the server appears', async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.dispose())
  await server.stop()
  const nats = createNatsClient({ url: server.url, namespace: uniqueName('kn'), name: 'kit-nats-test', streams: [] }, log)
  t.teardown(() => nats.close())
  let connects = 0
  nats.onConnect(() => {
    connects++
  })
  await nats.connect()
  t.notOk(nats.connected)
  t.equal(nats.connection, null)
  t.throws(() => nats.js(), { message: 'NATS is not connected' })
  t.equal(connects, 0)

  await server.start()
  await waitFor(() => nats.connected, 20_000)
  await waitFor(() => connects === 1)
  await nats.close()
  t.notOk(nats.connected, 'closed')
  t.equal(connects, 1)
})

t.test('a listener added after the connect runs at once; a failing listener is logged, not thrown', async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.dispose())
  const lines: Array<{ level: number; msg: string; err?: { message: string } }> = []
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()))
      done()
    }
  })
  const nats = createNatsClient({ url: server.url, namespace: '', name: 'kit-nats-test', streams: [] }, pino(capture))
  t.teardown(() => nats.close())
  await nats.connect()
  let calls = 0
  t.doesNotThrow(() =>
    nats.onConnect(() => {
      calls++
      throw new Error('listener bug')
    })
  )
  t.equal(calls, 1, 'run at once')
  const logged = await waitFor(() => lines.find((l) => l.msg === 'nats onConnect listener failed'))
  t.match(logged, { level: 50, err: { message: 'listener bug' } })
  t.equal(nats.subject('tasks.created'), 'tasks.created', 'no namespace: subjects as they are')
})
