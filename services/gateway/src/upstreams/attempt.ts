import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'

/** An upstream's answer: headers as a flat [name, value, …] list (names lower-case), the body buffered or streamed. */
export interface UpstreamResponse {
  statusCode: number
  headers: string[]
  body: Buffer | Readable
}

/**
 * An upstream answered 4xx, then the connection broke before its answer was whole: typically a 413 sent
 * while the body was still coming, followed by a close. The answer stands (the request was refused, the
 * upstream is fine) though its body is lost.
 */
export class UpstreamRefusedError extends Error {
  readonly code = 'UPSTREAM_REFUSED'
  constructor(
    readonly statusCode: number,
    cause: Error
  ) {
    super(`upstream answered ${statusCode}, then the connection broke`, { cause })
  }
}

export const ATTEMPT_TIMEOUT = 'ATTEMPT_TIMEOUT'
/** The rejection of an attempt that ran out of time (shared: only its code is read). */
const attemptTimedOut = Object.assign(new Error('the upstream did not answer in time'), { code: ATTEMPT_TIMEOUT })

/** Bodies up to this size (by Content-Length) are relayed as one buffer: one write to the client. */
const BUFFERED_BODY_LIMIT = 64 * 1024

function onAttemptTimeout(handler: AttemptHandler) {
  handler.timeout()
}

/**
 * One attempt through undici's dispatch API: resolves with the answer, whatever its status; rejects when
 * there is none (ATTEMPT_TIMEOUT after `timeoutMs`, a connection error, or UpstreamRefusedError).
 */
export function sendAttempt(pool: Dispatcher, opts: Dispatcher.DispatchOptions, timeoutMs: number): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    pool.dispatch(opts, new AttemptHandler(resolve, reject, timeoutMs))
  })
}

/**
 * undici's (native, legacy-style) dispatch handler for one attempt. Small bodies are collected into a
 * Buffer; anything larger or of unknown length is handed on as a stream with backpressure. Its own
 * native timer keeps short timeouts exact (undici's headersTimeout ticks in ~0.5 s steps) and needs no
 * AbortController per request.
 */
class AttemptHandler implements Dispatcher.DispatchHandler {
  private abortFn: ((err?: Error) => void) | null = null
  private timer: NodeJS.Timeout | null
  private settled = false
  private timedOut = false
  private statusCode = 0
  private headers: string[] = []
  private chunks: Buffer[] = []
  private size = 0
  private stream: Readable | null = null
  private resumeFn: (() => void) | null = null

  constructor(
    private readonly resolve: (res: UpstreamResponse) => void,
    private readonly reject: (err: Error) => void,
    timeoutMs: number
  ) {
    this.timer = setTimeout(onAttemptTimeout, timeoutMs, this)
  }

  timeout(): void {
    this.timer = null
    this.timedOut = true
    this.fail(attemptTimedOut)
    if (this.abortFn) this.abortFn(attemptTimedOut)
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort
    if (this.timedOut) abort(attemptTimedOut)
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true // 1xx: the final answer follows
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    this.statusCode = statusCode
    const headers = new Array<string>(rawHeaders.length)
    let length = -1
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]?.toString('latin1').toLowerCase() ?? ''
      const value = rawHeaders[i + 1]?.toString('latin1') ?? ''
      headers[i] = name
      headers[i + 1] = value
      if (name === 'content-length') length = Number(value)
    }
    this.headers = headers
    if (length >= 0 && length <= BUFFERED_BODY_LIMIT) return true
    this.resumeFn = resume
    this.stream = new Readable({ read: () => this.resumeFn?.() })
    this.succeed(this.stream)
    return true
  }

  onData(chunk: Buffer): boolean {
    if (this.stream) return this.stream.push(chunk)
    this.chunks.push(chunk)
    this.size += chunk.length
    return true
  }

  onComplete(): void {
    if (this.stream) {
      this.stream.push(null)
      return
    }
    const { chunks } = this
    const only = chunks.length === 1 ? chunks[0] : undefined
    this.succeed(only ?? Buffer.concat(chunks, this.size))
  }

  onError(err: Error): void {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (this.stream && this.settled) this.stream.destroy(err)
    else if (this.statusCode >= 400 && this.statusCode < 500) this.fail(new UpstreamRefusedError(this.statusCode, err))
    else this.fail(err)
  }

  private succeed(body: Buffer | Readable): void {
    if (this.settled) {
      if (body instanceof Readable) body.destroy()
      return
    }
    this.settled = true
    this.resolve({ statusCode: this.statusCode, headers: this.headers, body })
  }

  private fail(err: Error): void {
    if (this.settled) return
    this.settled = true
    this.reject(err)
  }
}
