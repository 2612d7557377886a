import { test } from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as contracts from '../../packages/contracts/src/index.js'
import { serviceConfig, type DeadLetterReason } from '../../packages/kit/src/index.js'
import { WebSocketRoutes } from '../../services/gateway/src/domain/route-table.js'
import { brokenLinks, checkRoutes, checkSubjects, checkVariables, collapsePrefixes, type Docs } from './docs-check.js'
import { kitRoutes, registeredRoutes, serviceModule, ServiceDirs, type Route } from './service-apps.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string) => readFileSync(join(root, file), 'utf8')

const serviceReadmes = () => Object.fromEntries(ServiceDirs.map((s) => [s, read(`services/${s}/README.md`)]))

/** Every Markdown file of the product but README.md and the per-package READMEs, by path. */
function otherDocs(): Docs {
  const adrs = readdirSync(join(root, 'docs/adr'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/adr/${f}`)
  const files = ['packages/contracts/README.md', 'docs/architecture.md', 'docs/events.md', 'docs/errors.md', ...adrs]
  return Object.fromEntries(files.map((f) => [f, read(f)]))
}

/** Every Markdown file of the product, by path. */
function allDocs(): Docs {
  const docs: Docs = { 'README.md': read('README.md'), 'packages/kit/README.md': read('packages/kit/README.md'), ...otherDocs() }
  for (const [name, text] of Object.entries(serviceReadmes())) docs[`services/${name}/README.md`] = text
  return docs
}

/** Routes a doc need not name, each for a reason. */
const IGNORED_ROUTES = [
  // Swagger UI's own files, served by @fastify/swagger-ui under /docs.
  'GET /docs/static/index.html',
  'GET /docs/static/swagger-initializer.js',
  'GET /docs/static/*'
]

/** UPPER_SNAKE names in the docs that are not variables, besides error codes and stream names, each for a reason. */
const NOT_VARIABLES = [
  // Why a message was dead-lettered (docs/events.md): the kit's DeadLetterReason, a type with no runtime list.
  ...(['INVALID_JSON', 'INVALID_ENVELOPE', 'UNKNOWN_TYPE', 'INVALID_DATA', 'HANDLER_FAILED'] as const satisfies readonly DeadLetterReason[]),
  // Codes of errors that never reach a client (ADR 0006; INTERNAL in infra/test/error-catalogue.test.ts).
  'REDIS_UNRESPONSIVE',
  'UPSTREAM_STATUS',
  // The style of error codes, named as a style (docs/architecture.md).
  'SCREAMING_SNAKE'
]

/** Backticked names in docs/events.md shaped like subjects that are not: a JetStream message's fields in code. */
const NOT_SUBJECTS = ['m.headers', 'm.data']

const routeOf = (r: { method: string; path: string }): Route => ({ method: r.method, path: r.path })

test('every route is named in README.md or its service README, and every route a doc names exists', async (t) => {
  const services: Record<string, Route[]> = {}
  for (const name of ServiceDirs) services[name] = collapsePrefixes(await registeredRoutes(t, root, name))
  // The gateway relays WebSocket upgrades from its server's upgrade event, outside the router.
  services.gateway!.push(...Object.keys(WebSocketRoutes).map((path) => ({ method: 'GET', path })))
  const contractRoutes = Object.fromEntries(Object.entries(contracts.PublicApi).map(([s, routes]) => [s, routes.map(routeOf)]))
  const drift = checkRoutes({
    services,
    kit: await kitRoutes(t),
    contracts: contractRoutes,
    readme: read('README.md'),
    serviceReadmes: serviceReadmes(),
    kitReadme: read('packages/kit/README.md'),
    others: otherDocs(),
    ignored: IGNORED_ROUTES
  })
  t.same(drift.missing, [], 'routes in the code that no doc names (service: METHOD path)')
  t.same(drift.extra, [], 'routes the docs name that the code lacks (file: METHOD path)')
})

test('every config variable is named in its README (shared ones in the kit README), and every name a doc uses exists', async (t) => {
  const schemas: Record<string, string[]> = {}
  for (const name of ServiceDirs) schemas[name] = Object.keys((await serviceModule(root, name)).ConfigSchema.properties)
  const shared = Object.keys(serviceConfig({ port: 0, schema: 'kit', name: 'kit' }, {}).properties)
  // docs/errors.md is all error codes: infra/test/error-catalogue.test.ts checks it against the catalogue.
  const { 'docs/errors.md': _errors, ...all } = allDocs()
  const notVariables = new Set([
    ...Object.keys(contracts.ErrorCatalogue),
    ...Object.keys(contracts.ChatErrorCatalogue),
    ...Object.values(contracts.Streams).map((s) => s.name),
    ...NOT_VARIABLES
  ])
  const drift = checkVariables({ schemas, shared, serviceReadmes: serviceReadmes(), kitReadme: read('packages/kit/README.md'), all, notVariables })
  t.same(drift.missing, [], 'variables of a schema that its README (or, shared, the kit README) does not name (service: NAME)')
  t.same(drift.extra, [], 'UPPER_SNAKE names in the docs that no schema has (file: NAME)')
})

/** Every value of every `*Subjects` constant the contracts export. */
function contractSubjects(): string[] {
  return Object.entries(contracts).flatMap(([name, value]) =>
    name.endsWith('Subjects') && typeof value === 'object' && value !== null ? Object.values(value).filter((v) => typeof v === 'string') : []
  )
}

test('every subject of the contracts is in docs/events.md, and every subject it names exists', (t) => {
  const subjects = contractSubjects()
  t.ok(subjects.includes(contracts.TaskSubjects.created) && subjects.includes(contracts.CleanupSubjects.runCompleted), 'the constants are found')
  const patterns = [contracts.chatLiveSubject('<chatSessionId>'), ...Object.values(contracts.Streams).flatMap((s) => [...s.subjects])]
  const drift = checkSubjects({ subjects, patterns, events: read('docs/events.md'), notSubjects: NOT_SUBJECTS })
  t.same(drift.missing, [], 'subjects of the contracts docs/events.md does not name')
  t.same(drift.extra, [], 'subjects docs/events.md names that the contracts lack')
  t.end()
})

test('every relative link in the docs points at a file that exists', (t) => {
  t.same(
    brokenLinks(allDocs(), (from, target) => existsSync(join(root, dirname(from), target))),
    [],
    'links to nothing (file: target)'
  )
  t.end()
})

test('planted route drift: an unnamed route, an unnamed contract, a route and a prefix that do not exist', (t) => {
  const routes = checkRoutes({
    services: {
      api: collapsePrefixes([
        { method: 'GET', path: '/a' },
        { method: 'POST', path: '/b/{id}' },
        { method: 'GET', path: '/p' },
        { method: 'GET', path: '/p/*' }
      ])
    },
    kit: [{ method: 'GET', path: '/health' }],
    contracts: {
      api: [
        { method: 'GET', path: '/a' },
        { method: 'PUT', path: '/c' }
      ]
    },
    readme: 'Routes: `GET /a`, `DELETE /b/{id}` and everything under `/p/*`.',
    serviceReadmes: { api: 'Also `POST /gone` and `/nowhere*`.' },
    kitReadme: 'Nothing here.',
    others: { 'docs/x.md': '`GET /health` and `GET /a?limit=1`.' },
    ignored: []
  })
  t.same(routes.missing, ['api: POST /b/{id}', 'api: PUT /c', 'kit: GET /health'], 'the routes no doc names')
  t.same(
    routes.extra,
    ['README.md: DELETE /b/{id}', 'services/api/README.md: /nowhere*', 'services/api/README.md: POST /gone'],
    'the routes the code lacks'
  )
  t.end()
})

test("planted variable drift: an unnamed variable, a made-up one, another service's in a config table", (t) => {
  const variables = checkVariables({
    schemas: { api: ['LOG_LEVEL', 'API_URL', 'API_TIMEOUT_MS'], other: ['OTHER_URL'] },
    shared: ['LOG_LEVEL', 'NODE_ENV'],
    serviceReadmes: { api: '| `API_URL` | its URL |\n| `OTHER_URL` | not its own |\n`API_TIMEOUT_MS_MAX` is a longer name' },
    kitReadme: '`LOG_LEVEL` only',
    all: { 'README.md': '`API_URL`, `NOT_FOUND`, `MADE_UP_VAR`' },
    notVariables: new Set(['NOT_FOUND'])
  })
  t.same(variables.missing, ['api: API_TIMEOUT_MS', 'kit: NODE_ENV', 'other: OTHER_URL'], 'the variables no README names')
  t.same(variables.extra, ['README.md: MADE_UP_VAR', 'services/api/README.md config table: OTHER_URL'], 'the names no schema has')
  t.end()
})

test('planted subject drift: an unnamed subject, a shorthand and a pattern that do not exist', (t) => {
  const subjects = checkSubjects({
    subjects: ['x.y.created', 'x.y.deleted', 'x.z.done'],
    patterns: ['x.live.<id>', 'dlq.>'],
    events: '| `x.y.created`, `.updated` | `<ns>.x.z.done` | `x.live.<roomId>`, `dlq.<subject>`, `q.live.<id>`, `m.data` |',
    notSubjects: ['m.data']
  })
  t.same(subjects.missing, ['x.y.deleted'], 'the subjects the catalogue does not name')
  t.same(subjects.extra, ['q.live.<id>', 'x.y.updated'], 'the subjects the contracts lack')
  t.end()
})

test('planted broken link: a relative link to nothing; anchors and other schemes are not files', (t) => {
  const files = { 'docs/a.md': '[b](b.md) [c](c.md#part) [d](#here) [e](https://example.com/x) [f](mailto:x@y)' }
  t.same(
    brokenLinks(files, (_from, target) => target === 'b.md'),
    ['docs/a.md: c.md#part']
  )
  t.end()
})
