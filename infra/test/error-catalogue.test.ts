import { test } from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ChatErrorCatalogue, ErrorCatalogue, isErrorCode, type ErrorCode } from '../../packages/contracts/src/index.js'
import { build } from '../../services/gateway/test/helper.js'
import { projectOf, walkCodes, type Project } from './error-code-walker.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const catalogues = { http: new Set(Object.keys(ErrorCatalogue)), chat: new Set(Object.keys(ChatErrorCatalogue)) }
const sorted = (codes: Iterable<string>) => [...codes].sort()

/** Codes on errors that never reach a client as such (the error handler would answer 500 INTERNAL_ERROR). */
const INTERNAL = [
  'EOPENBREAKER', // the gateway's breaker refuses a call as opossum does; the caller answers CIRCUIT_OPEN
  'REDIS_UNRESPONSIVE' // kit's Redis plugin: a frozen server, seen by readiness and the logs
]

/** Catalogue codes no route's OpenAPI response names, each for a reason. */
const NOT_IN_OPENAPI = [
  'CLIENT_ABORTED', // the client has gone: only the logs see it
  'INVALID_CONTENT_LENGTH', // any body on any route: the body parser, not a route, answers it
  'UPSTREAM_REFUSED' // keeps the status the service answered, whatever it is
]

/** One program per service (each declares its own Prisma client on Fastify), one for kit. */
function sourceProjects(): Project[] {
  const services = readdirSync(join(root, 'services')).map((name) =>
    projectOf(join(root, 'services', name, 'tsconfig.json'), join(root, 'services', name, 'src/'))
  )
  return [...services, projectOf(join(root, 'tsconfig.json'), join(root, 'packages/kit/src/'))]
}

test('the walker finds a planted unknown code, and the codes the types point at', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'error-catalogue-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'planted.ts')
  await writeFile(
    file,
    [
      'declare function defineError(code: string, message: string): unknown',
      "export const Planted = defineError('PLANTED_CODE', 'not in the catalogue')",
      "export const Known = defineError('NOT_FOUND', 'in the catalogue')",
      "export const reply = { code: 'ALSO_PLANTED', message: 'a reply' }",
      "export class InternalError extends Error { readonly code = 'THIRD_PLANTED' }",
      "declare function send(code: 'FORBIDDEN' | 'UPSTREAM_ERROR'): void",
      "send('FORBIDDEN')",
      "declare function frame(code: 'NO_SESSION' | 'SESSION_CLOSED'): void",
      "frame('NO_SESSION')",
      "export const unrelated = { kind: 'TOKEN_INVALID', reason: 'INVALID_JSON' as 'INVALID_JSON' | 'INVALID_ENVELOPE' }"
    ].join('\n')
  )
  const uses = walkCodes([{ options: { strict: true, noEmit: true }, files: [file] }], catalogues, dir)
  t.same(sorted(uses.unknown.keys()), ['ALSO_PLANTED', 'PLANTED_CODE', 'THIRD_PLANTED'])
  t.same(uses.unknown.get('PLANTED_CODE'), ['planted.ts:2'])
  t.same(sorted(uses.http.keys()), ['FORBIDDEN', 'NOT_FOUND'])
  t.same(sorted(uses.chat.keys()), ['NO_SESSION'])
})

test('the source uses exactly the catalogues: no code outside them, none of theirs unused', async (t) => {
  const uses = walkCodes(sourceProjects(), catalogues, root)
  t.same(
    sorted(uses.unknown.keys()),
    sorted(INTERNAL),
    `only internal codes outside the catalogue: ${JSON.stringify(Object.fromEntries(uses.unknown))}`
  )
  t.same(sorted(uses.http.keys()), sorted(catalogues.http), 'every HTTP code is used, and only those')
  t.same(sorted(uses.chat.keys()), sorted(catalogues.chat), 'every chat frame code is used, and only those')
  // The uses are where the code is: a factory per code in its service, the error handler's own.
  t.match(uses.http.get('UPSTREAM_ERROR'), [/^services\/gateway\/src\/domain\/errors\.ts:\d+$/])
  t.ok(uses.http.get('BAD_REQUEST')?.some((w) => w.startsWith('packages/kit/src/plugins/error-handler.ts:')))
})

interface OpenApiResponse {
  description: string
  content?: { 'application/json'?: { schema?: { $ref?: string } } }
  'x-error-codes'?: string[]
}
interface OpenApiDoc {
  paths: Record<string, Record<string, { responses: Record<string, OpenApiResponse> }>>
  components: { schemas: { ErrorReply: { properties: { code: { type: string; enum: string[] } } } } }
}

/** Whether a code may come with this status: the catalogue's, or any 4xx where its entry says the status varies. */
function statusFits(code: ErrorCode, status: number): boolean {
  const entry: { status: number; statusNote?: string } = ErrorCatalogue[code]
  return entry.status === status || (entry.statusNote !== undefined && status >= 400 && status < 500)
}

test("the gateway's OpenAPI document: ErrorReply.code is the catalogue, every error response names its codes", async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json<OpenApiDoc>()
  t.same(doc.components.schemas.ErrorReply.properties.code, {
    type: 'string',
    enum: Object.keys(ErrorCatalogue),
    description: 'Stable machine-readable code (docs/errors.md)'
  })
  const named = new Set<string>()
  const problems: string[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      for (const [status, response] of Object.entries(op.responses)) {
        const where = `${method.toUpperCase()} ${path} ${status}`
        const isError = response.content?.['application/json']?.schema?.$ref === '#/components/schemas/ErrorReply'
        const codes = response['x-error-codes'] ?? []
        if (isError && codes.length === 0) problems.push(`${where}: an error response that names no code`)
        if (!isError && codes.length > 0) problems.push(`${where}: codes on a response that is not ErrorReply`)
        for (const code of codes) {
          named.add(code)
          if (!isErrorCode(code)) problems.push(`${where}: ${code} is not in the catalogue`)
          else if (!statusFits(code, Number(status))) problems.push(`${where}: ${code} is ${ErrorCatalogue[code].status} in the catalogue`)
          if (!response.description.includes(code)) problems.push(`${where}: the description does not mention ${code}`)
        }
      }
    }
  }
  t.same(problems, [])
  t.same(sorted(Object.keys(ErrorCatalogue).filter((code) => !named.has(code))), sorted(NOT_IN_OPENAPI), 'every other code is named by a response')
})

/** The rows of the first Markdown table after `heading`: its cells, trimmed. */
function tableAfter(markdown: string, heading: string): string[][] {
  const lines = markdown.split('\n')
  const start = lines.indexOf(heading)
  if (start === -1) throw new Error(`no heading "${heading}"`)
  const rows: string[][] = []
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('#')) break
    if (!line.startsWith('|') || /^\|[-| ]+\|$/.test(line)) continue
    rows.push(
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim())
    )
  }
  return rows.slice(1) // the header row
}

const unquote = (cell: string | undefined) => (cell ?? '').replace(/^`|`$/g, '')

test('docs/errors.md lists every HTTP code with its status, and every chat frame code', async (t) => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8')
  const http = tableAfter(doc, '## HTTP').map(([code, status]) => [unquote(code), Number.parseInt(status ?? '', 10)])
  t.same(
    http,
    Object.entries(ErrorCatalogue).map(([code, entry]) => [code, entry.status]),
    'the HTTP table: code and status, in catalogue order'
  )
  const chat = tableAfter(doc, '## Chat WebSocket `error` frames').map(([code]) => unquote(code))
  t.same(chat, Object.keys(ChatErrorCatalogue), 'the chat table')
})

/** The Markdown of the repository's own docs: the README, docs/ and each package's and service's README. */
function markdownFiles(): string[] {
  const under = (dir: string) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.md'))
      .map((f) => join(dir, f))
  const readmes = ['services', 'packages'].flatMap((dir) => readdirSync(join(root, dir)).map((name) => join(dir, name, 'README.md')))
  return ['README.md', ...under('docs'), ...readmes.filter((f) => existsSync(join(root, f)))]
}

test('every "status `CODE`" the docs write agrees with the catalogue', async (t) => {
  // A status, then a code in backticks (400 `VALIDATION_ERROR`) or bare with an underscore (401 SESSION_ENDED).
  const mention = /(?<![\w.[])([1-5]\d\d)(?: with)?\s+(?:`([A-Z][A-Z0-9_]*)`|([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b)/g
  const problems: string[] = []
  let mentions = 0
  for (const file of markdownFiles()) {
    for (const m of readFileSync(join(root, file), 'utf8').matchAll(mention)) {
      const status = Number(m[1])
      const code = m[2] ?? m[3] ?? ''
      mentions++
      if (!isErrorCode(code)) problems.push(`${file}: ${status} ${code} is not in the catalogue`)
      else if (!statusFits(code, status)) problems.push(`${file}: ${status} ${code}, but the catalogue says ${ErrorCatalogue[code].status}`)
    }
  }
  t.same(problems, [])
  t.ok(mentions > 30, `the docs were read (${mentions} mentions)`)
})
