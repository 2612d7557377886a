import type { BreakerState, DegradationMode, UpstreamServiceHealth } from '@platform/contracts'
import { ServiceNames, unavailableMode, type ServiceName } from '../domain/route-table.js'
import type { GatewayMetrics } from '../plugins/gateway-metrics.js'
import { UpstreamInstance, type Log, type UpstreamOptions } from './instance.js'

const BREAKER_ORDER: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 }

/** A service's instances, balanced round robin over those whose breaker lets requests through. */
export class UpstreamService {
  private next = 0
  readonly degradationMode: DegradationMode

  constructor(
    readonly name: ServiceName,
    readonly instances: UpstreamInstance[]
  ) {
    this.degradationMode = unavailableMode(name)
  }

  /** The next available instance, or null when every breaker is open. */
  pick(): UpstreamInstance | null {
    const list = this.instances
    const n = list.length
    for (let i = 0; i < n; i++) {
      const idx = (this.next + i) % n
      const instance = list[idx]
      if (instance?.available) {
        this.next = (idx + 1) % n
        return instance
      }
    }
    return null
  }

  /** When the first instance will let a probe through. */
  retryAfterSeconds(): number {
    return Math.min(...this.instances.map((i) => i.breaker.retryAfterSeconds()))
  }

  async health(timeoutMs: number): Promise<UpstreamServiceHealth> {
    const instances = await Promise.all(this.instances.map((i) => i.probe(timeoutMs)))
    const up = instances.filter((i) => i.status === 'up')
    const worst = instances.reduce<BreakerState>((w, i) => (BREAKER_ORDER[i.breaker] > BREAKER_ORDER[w] ? i.breaker : w), 'closed')
    const latencies = up.map((i) => i.lastProbe.latencyMs).filter((l): l is number => l !== null)
    return {
      status: up.length > 0 ? 'up' : 'down',
      breaker: worst,
      latencyMs: latencies.length ? Math.min(...latencies) : null,
      instances
    }
  }
}

/** `http://a:1, http://b:2/` → its distinct base URLs. */
const urlList = (urls: string) => [
  ...new Set(
    urls
      .split(',')
      .map((u) => u.trim().replace(/\/+$/, ''))
      .filter(Boolean)
  )
]

/** Every service of the upstream table with its instances. */
export class Upstreams {
  private readonly services: Record<ServiceName, UpstreamService>

  constructor(opts: UpstreamOptions, metrics: GatewayMetrics, log: Log) {
    const service = (name: ServiceName) =>
      new UpstreamService(
        name,
        urlList(opts.urls[name]).map((u) => new UpstreamInstance(name, u, opts, metrics, log))
      )
    this.services = {
      sessions: service('sessions'),
      'task-sessions': service('task-sessions'),
      chat: service('chat'),
      'cleanup-worker': service('cleanup-worker')
    }
  }

  get(name: ServiceName): UpstreamService {
    return this.services[name]
  }

  async health(timeoutMs: number): Promise<Record<string, UpstreamServiceHealth>> {
    const entries = await Promise.all(ServiceNames.map(async (name) => [name, await this.services[name].health(timeoutMs)] as const))
    return Object.fromEntries(entries)
  }

  async close(): Promise<void> {
    await Promise.all(ServiceNames.flatMap((name) => this.services[name].instances.map((i) => i.close())))
  }
}
