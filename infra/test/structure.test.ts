import { test } from 'tap'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cruise, type ICruiseOptions, type IFlattenedRuleSet } from 'dependency-cruiser'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The import rules of the workspace: what a newcomer may rely on when reading any folder. */
const ruleSet: IFlattenedRuleSet = {
  forbidden: [
    { name: 'no-cycle', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'no-service-to-service',
      comment: 'Services talk over HTTP and events; code is shared only through packages/*.',
      severity: 'error',
      from: { path: '^services/([^/]+)/' },
      to: { path: '^services/', pathNot: '^services/$1/' }
    },
    {
      name: 'no-package-to-service',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: '^services/' }
    },
    {
      name: 'contracts-only-typebox',
      comment: 'Contracts are schemas: their only runtime dependency is TypeBox.',
      severity: 'error',
      from: { path: '^packages/contracts/' },
      to: { dependencyTypes: ['npm', 'npm-dev', 'npm-no-pkg', 'npm-unknown'], pathNot: '/typebox/' }
    }
  ]
}

async function cruiseTree(cwd: string, paths: string[]) {
  const options: ICruiseOptions = {
    baseDir: cwd,
    ruleSet,
    validate: true,
    // Type-only imports make cycles too: they couple the files for a reader as much as values do.
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(generated|node_modules|dist)/' },
    // Workspace packages export their TypeScript sources under the `import` condition.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'default'] }
  }
  const { output } = await cruise(paths, options, { extensionAlias: { '.js': ['.ts', '.js'] } })
  if (typeof output === 'string') throw new Error(output)
  return {
    violations: output.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort(),
    resolved: (from: string, to: string) => output.modules.find((m) => m.source === from)?.dependencies.some((d) => d.resolved === to) ?? false
  }
}

test('no import cycle, and no import from one service into another', async (t) => {
  const tree = await cruiseTree(root, ['packages/contracts/src', 'packages/kit/src', 'services'])
  t.same(tree.violations, [])
  // The rules only see what resolves: a workspace import and a `.js` → `.ts` import must both resolve.
  t.ok(tree.resolved('services/sessions/src/app.ts', 'packages/kit/src/index.ts'))
  t.ok(tree.resolved('services/chat/src/plugins/chat-store.ts', 'services/chat/src/plugins/message-writer.ts'))
})

test('the rules catch a cycle and an import across services', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'structure-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'services/a/src'), { recursive: true })
  await mkdir(join(dir, 'services/b/src'), { recursive: true })
  await writeFile(join(dir, 'services/a/src/one.ts'), "import { two } from './two.js'\nexport const one = () => two()\n")
  await writeFile(join(dir, 'services/a/src/two.ts'), "import { one } from './one.js'\nexport const two = (): unknown => one\n")
  await writeFile(join(dir, 'services/b/src/three.ts'), "import { one } from '../../a/src/one.js'\nexport const three = one\n")
  const { violations } = await cruiseTree(dir, ['services'])
  const rel = (p: string) => relative(dir, join(dir, p))
  t.same(violations, [
    `no-cycle: ${rel('services/a/src/one.ts')} → ${rel('services/a/src/two.ts')}`,
    `no-service-to-service: ${rel('services/b/src/three.ts')} → ${rel('services/a/src/one.ts')}`
  ])
})
