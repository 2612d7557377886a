import autocannon from 'autocannon'

export interface Row {
  figure: string
  value: string
  target: string
}

/** Prints the benchmark's table: figure, value, target (and whether it was met when known). */
export function printTable(title: string, rows: Array<Row & { met?: boolean }>): void {
  const cells = rows.map((r) => [r.figure, r.value, r.target, r.met === undefined ? '' : r.met ? 'yes' : 'NO'])
  const head = ['figure', 'value', 'target', 'met']
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)))
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i] ?? 0)).join(' | ')} |`
  console.log(`\n## ${title}\n`)
  console.log(line(head))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const c of cells) console.log(line(c))
  console.log('')
}

export interface LoadResult {
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
}

/** autocannon against one URL; latencies in milliseconds. */
export async function load(opts: {
  url: string
  connections: number
  duration?: number
  headers?: Record<string, string>
  method?: 'GET' | 'POST'
  body?: string
}): Promise<LoadResult> {
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.duration ?? 5,
    headers: opts.headers ?? {},
    method: opts.method ?? 'GET',
    ...(opts.body ? { body: opts.body } : {})
  })
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx }
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
