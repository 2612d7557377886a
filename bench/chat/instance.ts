/**
 * One chat instance for the benchmark, in a process of its own: configured from the environment
 * like the real server, it reports its port over IPC and, when asked, its memory after a full GC.
 * Run with --expose-gc.
 */
import Fastify from 'fastify'
import { fastifyOptions, loadConfig } from '@platform/kit'
import { app } from '../../services/chat/src/app.js'
import { ConfigSchema } from '../../services/chat/src/config.js'

const config = loadConfig(ConfigSchema)
const fastify = Fastify(fastifyOptions(config))
await fastify.register(app, { config })
await fastify.listen({ host: '127.0.0.1', port: 0 })

const gc = (globalThis as { gc?: () => void }).gc
const send = (msg: object) => process.send?.(msg)

async function answer(msg: { cmd: string }): Promise<void> {
  if (msg.cmd === 'memory') {
    for (let i = 0; i < 3; i++) {
      gc?.()
      await new Promise((r) => setTimeout(r, 50))
    }
    const m = process.memoryUsage()
    send({ cmd: 'memory', heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers })
  } else if (msg.cmd === 'stop') {
    await fastify.close()
    process.exit(0)
  }
}

process.on('message', (msg: { cmd: string }) => {
  // A failed answer ends the instance, so the benchmark sees it exit instead of waiting for a reply.
  answer(msg).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
})
process.on('SIGTERM', () => void fastify.close().then(() => process.exit(0)))

// Wait for NATS so that fan-out between instances is live before the load starts.
const deadline = Date.now() + 10_000
while (!(fastify as unknown as { nats?: { connected: boolean } }).nats?.connected && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 50))
}
send({ cmd: 'ready', port: (fastify.server.address() as { port: number }).port })
