import { PassThrough, type Readable } from 'node:stream'
import { ClientAbortedError, PayloadTooLargeError } from '../domain/errors.js'

/**
 * The body passes through while it stays under the limit. Past it the client's stream is paused, never
 * destroyed, so the 413 still reaches the client.
 */
export function limitedStream(src: Readable, limit: number): Readable {
  const out = new PassThrough()
  let seen = 0
  const stop = (err: Error) => {
    src.off('data', onData)
    src.pause()
    out.destroy(err)
  }
  const onData = (chunk: Buffer) => {
    seen += chunk.length
    if (seen > limit) return stop(new PayloadTooLargeError(String(limit)))
    if (!out.write(chunk)) src.pause()
  }
  out.on('drain', () => src.resume())
  src.on('data', onData)
  src.once('end', () => out.end())
  src.once('aborted', () => stop(new ClientAbortedError()))
  src.once('error', () => stop(new ClientAbortedError()))
  return out
}

/** The whole body in memory, for requests that may be sent again; same limit and same care. */
export function readLimited(src: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let seen = 0
    const stop = (err: Error) => {
      src.off('data', onData)
      src.pause()
      reject(err)
    }
    const onData = (chunk: Buffer) => {
      seen += chunk.length
      if (seen > limit) return stop(new PayloadTooLargeError(String(limit)))
      chunks.push(chunk)
    }
    src.on('data', onData)
    src.once('end', () => resolve(Buffer.concat(chunks, seen)))
    src.once('aborted', () => stop(new ClientAbortedError()))
    src.once('error', () => stop(new ClientAbortedError()))
  })
}
