import { createServer, connect, type Server, type Socket } from 'node:net'

/** A TCP proxy a test can cut (refusing and dropping connections) and restore, e.g. in front of Postgres. */
export interface TcpProxy {
  port: number
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let open = true
  const server: Server = createServer((client) => {
    if (!open) return client.destroy()
    const upstream = connect(targetPort, targetHost)
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream).pipe(client)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
  })
  const cut = () => {
    open = false
    for (const s of sockets) s.destroy()
    sockets.clear()
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as { port: number }).port,
    cut,
    restore: () => {
      open = true
    },
    close: () =>
      new Promise<void>((r) => {
        cut()
        server.close(() => r())
      })
  }
}
