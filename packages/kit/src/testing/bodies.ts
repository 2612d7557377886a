import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { waitFor } from './wait.js'

const run = promisify(execFile)

/**
 * Node's fetch in a process of its own, as a real client is (sharing the server's event loop hides a
 * reset): POSTs JSON bodies of `size` bytes from a Buffer (Content-Length) or a stream (chunked), one
 * after another, and prints each answer or the code of the failure.
 */
const CLIENT = `
const [url, authorization, cases] = process.argv.slice(1)
const headers = { authorization, 'content-type': 'application/json' }
function json(size) {
  const head = '{"title":"', tail = '"}'
  return Buffer.concat([Buffer.from(head), Buffer.alloc(size - head.length - tail.length, 97), Buffer.from(tail)])
}
async function* stream(buf) { for (let i = 0; i < buf.length; i += 262144) yield buf.subarray(i, i + 262144) }
const results = []
for (const { size, how } of JSON.parse(cases)) {
  const buf = json(size)
  const body = how === 'declared' ? buf : ReadableStream.from(stream(buf))
  try {
    const res = await fetch(url, { method: 'POST', headers, body, duplex: 'half' })
    results.push({ status: res.status, connection: res.headers.get('connection'), requestId: res.headers.get('x-request-id'), body: await res.json() })
  } catch (err) {
    results.push({ failed: err.cause?.code ?? err.code ?? err.message })
  }
}
console.log(JSON.stringify(results))`

export interface FetchAnswer {
  status: number
  connection: string | null
  requestId: string
  body: Record<string, unknown>
}

/** A JSON body of `size` bytes, sent with Content-Length (`declared`) or chunked (`streamed`). */
export interface BodyCase {
  size: number
  how: 'declared' | 'streamed'
}

/** POSTs each case to `url` with Node's fetch from a child process; a failure is its error code. */
export async function postBodiesWithFetch(url: string, authorization: string, cases: BodyCase[]) {
  const args = ['--input-type=module', '-e', CLIENT, url, authorization, JSON.stringify(cases)]
  const { stdout } = await run(process.execPath, args)
  return JSON.parse(stdout) as Array<FetchAnswer | { failed: string }>
}

/** Reads the kit's body-drain metrics of an app: one metric's value, and how its drains ended. */
export function drainMetrics(app: FastifyInstance) {
  const metric = async (name: string) => {
    const line = (await app.inject({ method: 'GET', url: '/metrics' })).body.split('\n').find((l) => l.startsWith(`${name} `))
    return line ? Number(line.split(' ').pop()) : 0
  }
  /** Waits for a drain to end (the client may see the close first); how drains ended and the bytes they read. */
  const drained = async () => {
    await waitFor(async () => (await metric('http_body_drained_bytes_total')) > 0 || (await metric('http_body_drains_total{end="closed"}')) > 0)
    const ends: Record<string, number> = {}
    for (const end of ['complete', 'bytes', 'time', 'closed']) {
      const n = await metric(`http_body_drains_total{end="${end}"}`)
      if (n) ends[end] = n
    }
    return { ends, bytes: await metric('http_body_drained_bytes_total') }
  }
  return { metric, drained }
}
