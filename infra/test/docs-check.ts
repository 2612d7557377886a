/**
 * What the docs test compares: names read from Markdown (routes, variables, subjects) against sets read from
 * the code. Pure functions, so a planted fixture can prove each comparison fails when it should.
 */
import type { Route } from './service-apps.js'

export type Docs = Record<string, string>

/** A route's key as the docs write it: `GET /api/v1/sessions/{title}`; `* /prefix` for everything below a prefix. */
export const routeKey = (r: Route) => `${r.method} ${r.path}`

const METHOD = '(?:GET|POST|PUT|PATCH|DELETE|WS)'
const ROUTE_MENTION = new RegExp(`\\b(${METHOD}(?:\\|${METHOD})*) +(/[\\w\\-{}/.*]*)`, 'g')
const PREFIX_MENTION = /(?<![\w/])(\/[\w\-{}.][\w\-{}/.]*?)\/?\*/g

/** `METHOD[|METHOD] /path` in a text (a `WS` upgrade is a GET); a path ending in `*` is a prefix, left to prefixMentions. */
export function routeMentions(text: string): Route[] {
  const found: Route[] = []
  for (const m of text.matchAll(ROUTE_MENTION)) {
    const path = m[2]!.replace(/\.+$/, '')
    if (path.endsWith('*')) continue
    for (const method of m[1]!.split('|')) found.push({ method: method === 'WS' ? 'GET' : method, path })
  }
  return found
}

/** `/prefix*` or `/prefix/*`: a prefix and everything below it. */
export function prefixMentions(text: string): string[] {
  return [...text.matchAll(PREFIX_MENTION)].map((m) => m[1]!)
}

/** A proxied prefix registered as `X` and `X/*` (every method) reads as one route: `* X`. */
export function collapsePrefixes(routes: Route[]): Route[] {
  const paths = new Set(routes.map((r) => r.path))
  const prefixes = new Set(routes.filter((r) => r.path.endsWith('/*') && paths.has(r.path.slice(0, -2))).map((r) => r.path.slice(0, -2)))
  const rest = routes.filter((r) => !prefixes.has(r.path) && !prefixes.has(r.path.replace(/\/\*$/, '')))
  return [...rest, ...[...prefixes].map((path) => ({ method: '*', path }))]
}

export interface RouteDocs {
  /** Per service (folder name): its routes as registered, prefixes collapsed. */
  services: Record<string, Route[]>
  /** What the kit registers in every service: named once in packages/kit/README.md. */
  kit: Route[]
  /** The public contracts (PublicApi), per service. */
  contracts: Record<string, Route[]>
  /** README.md, each services/<name>/README.md by name, packages/kit/README.md, and every other doc by file. */
  readme: string
  serviceReadmes: Record<string, string>
  kitReadme: string
  others: Docs
  /** Routes no doc need name, as `METHOD /path`, each for a reason. */
  ignored: readonly string[]
}

export interface Drift {
  /** In the code, named nowhere it should be. */
  missing: string[]
  /** Named in a doc, absent from the code. */
  extra: string[]
}

const sortedUnique = (list: string[]) => [...new Set(list)].sort()

/**
 * Every registered and every contract route is named in README.md or its service's README (the kit's own in
 * the kit's README), and every route or prefix any doc names exists.
 */
export function checkRoutes(d: RouteDocs): Drift {
  const kitKeys = new Set(d.kit.map(routeKey))
  const named = (service: string, r: Route) => {
    const text = `${d.readme}\n${d.serviceReadmes[service] ?? ''}${kitKeys.has(routeKey(r)) ? `\n${d.kitReadme}` : ''}`
    if (r.method === '*') return prefixMentions(text).includes(r.path)
    return routeMentions(text).some((m) => routeKey(m) === routeKey(r))
  }
  const missing: string[] = []
  for (const source of [d.services, d.contracts]) {
    for (const [service, routes] of Object.entries(source)) {
      for (const r of routes) if (!d.ignored.includes(routeKey(r)) && !named(service, r)) missing.push(`${service}: ${routeKey(r)}`)
    }
  }
  for (const r of d.kit) if (!routeMentions(d.kitReadme).some((m) => routeKey(m) === routeKey(r))) missing.push(`kit: ${routeKey(r)}`)

  const all = [...Object.values(d.services), ...Object.values(d.contracts), d.kit].flat()
  const keys = new Set(all.map(routeKey))
  const paths = all.map((r) => r.path)
  const files: Docs = { 'README.md': d.readme, 'packages/kit/README.md': d.kitReadme, ...d.others }
  for (const [name, text] of Object.entries(d.serviceReadmes)) files[`services/${name}/README.md`] = text
  const extra: string[] = []
  for (const [file, text] of Object.entries(files)) {
    for (const m of routeMentions(text)) if (!keys.has(routeKey(m))) extra.push(`${file}: ${routeKey(m)}`)
    for (const p of prefixMentions(text)) if (!paths.some((path) => path === p || path.startsWith(`${p}/`))) extra.push(`${file}: ${p}*`)
  }
  return { missing: sortedUnique(missing), extra: sortedUnique(extra) }
}

const VARIABLE = /(?<![\w-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-])/g

/** UPPER_SNAKE names (with at least one underscore) in a text. */
export function upperSnake(text: string): string[] {
  return [...text.matchAll(VARIABLE)].map((m) => m[0])
}

const mentions = (text: string, name: string) => new RegExp(`(?<![\\w-])${name}(?![\\w-])`).test(text)

/** Names in the first cell of a Markdown table row: the rows of a README's config table. */
function tableVariables(text: string): string[] {
  return text.split('\n').flatMap((line) => (line.startsWith('|') ? upperSnake(line.split('|')[1] ?? '') : []))
}

export interface VariableDocs {
  /** Per service (folder name): every key of its ConfigSchema. */
  schemas: Record<string, string[]>
  /** The keys every service shares (the kit's base config): named once in packages/kit/README.md. */
  shared: string[]
  serviceReadmes: Record<string, string>
  kitReadme: string
  /** Every doc whose UPPER_SNAKE names must be variables (or another known name), by file. */
  all: Docs
  /** UPPER_SNAKE names that are not variables: error codes, stream names, and the explicit list. */
  notVariables: ReadonlySet<string>
}

/**
 * Every key of each service's schema is named in its README, or (a shared one) in the kit's; every UPPER_SNAKE
 * name a doc uses is a variable of some schema or a known other name; a README's config table lists only
 * its own service's variables.
 */
export function checkVariables(d: VariableDocs): Drift {
  const shared = new Set(d.shared)
  const missing: string[] = []
  for (const [service, keys] of Object.entries(d.schemas)) {
    const readme = d.serviceReadmes[service] ?? ''
    for (const key of keys) {
      if (!mentions(readme, key) && !(shared.has(key) && mentions(d.kitReadme, key))) missing.push(`${service}: ${key}`)
    }
  }
  for (const key of d.shared) if (!mentions(d.kitReadme, key)) missing.push(`kit: ${key}`)

  const known = new Set(Object.values(d.schemas).flat())
  const extra: string[] = []
  for (const [file, text] of Object.entries(d.all)) {
    for (const name of upperSnake(text)) if (!known.has(name) && !d.notVariables.has(name)) extra.push(`${file}: ${name}`)
  }
  for (const [service, text] of Object.entries(d.serviceReadmes)) {
    const own = new Set(d.schemas[service] ?? [])
    for (const name of tableVariables(text)) if (!own.has(name)) extra.push(`services/${service}/README.md config table: ${name}`)
  }
  return { missing: sortedUnique(missing), extra: sortedUnique(extra) }
}

const SUBJECT = /^(?:<[^>]+>\.)?[a-z][a-z0-9_-]*(?:\.(?:[a-z][a-z0-9_-]*|<[^>]+>|>))+$/
const SHORTHAND = /^(?:\.[a-z][a-z0-9_-]*)+$/

/**
 * Subjects named in backticks, one line at a time: `.activated` after `sessions.named.created` in the same line
 * is `sessions.named.activated` (its segments replace as many of the line's last full subject). A leading
 * `<ns>.` is the namespace every subject may carry (kit's `namespaced`), dropped.
 */
export function subjectMentions(text: string, notSubjects: readonly string[]): string[] {
  const found: string[] = []
  for (const line of text.split('\n')) {
    let base: string[] | null = null
    for (const [, token] of line.matchAll(/`([^`]+)`/g)) {
      if (notSubjects.includes(token!)) continue
      if (SUBJECT.test(token!)) {
        const subject = token!.replace(/^<[^>]+>\./, '')
        base = subject.split('.')
        found.push(subject)
      } else if (SHORTHAND.test(token!) && base) {
        const tail = token!.slice(1).split('.')
        found.push([...base.slice(0, base.length - tail.length), ...tail].join('.'))
      }
    }
  }
  return found
}

/** `chat.live.<chatSessionId>` and `dlq.>` both read `chat.live.<>` / `dlq.<>`: one placeholder segment. */
const placeholder = (subject: string) => subject.replace(/<[^>]*>|>$/g, '<>')

export interface SubjectDocs {
  /** Every value of the contracts' *Subjects constants. */
  subjects: string[]
  /** Subjects with a variable part (the live chat subject, each stream's filter). */
  patterns: string[]
  events: string
  /** Backticked names of the shape of a subject that are not subjects (code, field names), each for a reason. */
  notSubjects: readonly string[]
}

/** Every subject constant is in docs/events.md and every subject it names is a constant or fits a pattern. */
export function checkSubjects(d: SubjectDocs): Drift {
  const named = subjectMentions(d.events, d.notSubjects)
  const patterns = new Set(d.patterns.map(placeholder))
  const missing = d.subjects.filter((s) => !named.includes(s))
  const extra = named.filter((s) => !d.subjects.includes(s) && !patterns.has(placeholder(s)))
  return { missing: sortedUnique(missing), extra: sortedUnique(extra) }
}

/** Relative Markdown links (`[text](path#anchor)`) whose file does not exist, as `file: path`. */
export function brokenLinks(files: Docs, exists: (from: string, target: string) => boolean): string[] {
  const broken: string[] = []
  for (const [file, text] of Object.entries(files)) {
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const path = target!.split('#')[0]!
      if (/^[a-z]+:/.test(target!) || path === '') continue
      if (!exists(file, path)) broken.push(`${file}: ${target}`)
    }
  }
  return broken.sort()
}
