import { relative } from 'node:path'
import ts from 'typescript'

/** The two catalogues' codes: HTTP (ErrorCatalogue) and chat's WebSocket error frames (ChatErrorCatalogue). */
export interface Catalogues {
  http: ReadonlySet<string>
  chat: ReadonlySet<string>
}

/** Each code found, with where (`file:line`). */
export interface CodeUses {
  http: Map<string, string[]>
  chat: Map<string, string[]>
  /** Passed to defineError or written as a `code` property, yet in neither catalogue. */
  unknown: Map<string, string[]>
}

/** One TypeScript program: its options and the source files to walk. */
export interface Project {
  options: ts.CompilerOptions
  files: string[]
}

/** The project of a tsconfig, limited to the files under `dir`. */
export function projectOf(tsconfig: string, dir: string): Project {
  const config = ts.getParsedCommandLineOfConfigFile(
    tsconfig,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      }
    }
  )
  if (!config) throw new Error(`cannot read ${tsconfig}`)
  return { options: config.options, files: config.fileNames.filter((f) => f.startsWith(dir)) }
}

/** Parsed files shared between programs: every project reads the same node_modules types. */
function cachingHost(options: ts.CompilerOptions, cache: Map<string, ts.SourceFile | undefined>): ts.CompilerHost {
  const host = ts.createCompilerHost(options)
  const read = host.getSourceFile.bind(host)
  host.getSourceFile = (fileName, language, onError) => {
    if (!cache.has(fileName)) cache.set(fileName, read(fileName, language, onError))
    return cache.get(fileName)
  }
  return host
}

/** `defineError('CODE', ...)`, `{ code: 'CODE' }` or `code = 'CODE'` (a class field): a code written down. */
function isCodeSite(node: ts.StringLiteral): boolean {
  const parent = node.parent
  if (ts.isCallExpression(parent)) {
    return parent.arguments[0] === node && ts.isIdentifier(parent.expression) && parent.expression.text === 'defineError'
  }
  if (ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.initializer === node && ts.isIdentifier(parent.name) && parent.name.text === 'code'
  }
  return false
}

/**
 * The string literals the type checker expects at this position: a union of literals, or nothing. The
 * literal itself alone says nothing (a type parameter inferred from it, as defineError's), so is nothing.
 */
function expectedLiterals(checker: ts.TypeChecker, node: ts.StringLiteral): string[] | null {
  const type = checker.getContextualType(node)
  if (!type?.isUnion()) return null
  const values = type.types.flatMap((m) => (m.isStringLiteral() ? [m.value] : []))
  return values.length === type.types.length ? values : null
}

function add(map: Map<string, string[]>, code: string, where: string): void {
  map.set(code, [...(map.get(code) ?? []), where])
}

/**
 * Every error code the source uses: a literal wherever the types expect codes of a catalogue (an
 * ErrorCode or ChatErrorCode parameter, property or array, or a union of such literals), and every
 * literal passed to defineError or written as a `code` property, which must be in a catalogue.
 */
export function walkCodes(projects: Project[], catalogues: Catalogues, root: string): CodeUses {
  const uses: CodeUses = { http: new Map(), chat: new Map(), unknown: new Map() }
  const cache = new Map<string, ts.SourceFile | undefined>()
  const within = (values: string[], set: ReadonlySet<string>) => values.length > 0 && values.every((v) => set.has(v))
  for (const project of projects) {
    const program = ts.createProgram(project.files, project.options, cachingHost(project.options, cache))
    const checker = program.getTypeChecker()
    for (const file of project.files) {
      const source = program.getSourceFile(file)
      if (!source) throw new Error(`${file} is not in its program`)
      const visit = (node: ts.Node): void => {
        if (ts.isStringLiteral(node)) {
          const where = `${relative(root, file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
          const expected = expectedLiterals(checker, node)
          const http = expected ? within(expected, catalogues.http) : false
          const chat = expected ? within(expected, catalogues.chat) : false
          if (http) add(uses.http, node.text, where)
          if (chat) add(uses.chat, node.text, where)
          if (!http && !chat && isCodeSite(node)) {
            if (catalogues.http.has(node.text)) add(uses.http, node.text, where)
            else if (catalogues.chat.has(node.text)) add(uses.chat, node.text, where)
            else add(uses.unknown, node.text, where)
          }
        }
        ts.forEachChild(node, visit)
      }
      visit(source)
    }
  }
  return uses
}
