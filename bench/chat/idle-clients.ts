/**
 * Opens idle authenticated chat connections in a process of its own (so their memory is not the
 * server's), keeps them open and answering pings, and reports over IPC.
 */
import { WebSocket } from 'ws'
import { signToken } from '@platform/kit'

const [url, countArg, secret] = process.argv.slice(2) as [string, string, string]
const count = Number(countArg)
const CONCURRENCY = 200
const sockets: WebSocket[] = []
let welcomed = 0
let failed = 0
let started = 0
const t0 = performance.now()

await new Promise<void>((resolve) => {
  const next = () => {
    if (started >= count) return
    const i = started++
    const token = signToken({ sub: `idle-${i}`, roles: ['user'] }, { secret })
    const ws = new WebSocket(`${url}?token=${token}`, { perMessageDeflate: false })
    sockets.push(ws)
    let settled = false
    const done = (ok: boolean) => {
      if (settled) return
      settled = true
      if (ok) welcomed++
      else failed++
      if (welcomed + failed === count) resolve()
      else next()
    }
    ws.once('message', () => done(true))
    ws.once('error', () => done(false))
  }
  for (let i = 0; i < CONCURRENCY; i++) next()
})

process.send?.({ cmd: 'opened', welcomed, failed, ms: performance.now() - t0 })
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd !== 'close') return
  for (const ws of sockets) ws.terminate()
  process.send?.({ cmd: 'closed', open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length })
  setTimeout(() => process.exit(0), 100)
})
