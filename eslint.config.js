import js from '@eslint/js'
import { defineConfig } from 'eslint/config'
import tseslint from 'typescript-eslint'

export default defineConfig(
  { ignores: ['**/node_modules/**', '**/generated/**', '**/dist/**', '**/.tap/**'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Each file is checked in the program of its nearest tsconfig.json: one per service (each declares its
        // own Prisma client on FastifyInstance), one per package, infra and bench.
        projectService: true,
        tsconfigRootDir: import.meta.dirname
      }
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': [
        'error',
        // tap awaits its own subtests: `test(...)` and `t.test(...)` are not meant to be awaited.
        { allowForKnownSafePromises: [{ from: 'package', package: '@tapjs/core', name: 'PromiseWithSubtest' }] }
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // Fastify plugins, hooks and handlers are async by contract (that is how Fastify knows they are done),
      // with or without an await inside.
      '@typescript-eslint/require-await': 'off',
      'no-console': 'off'
    }
  },
  {
    // Plain JavaScript config files: no tsconfig covers them, so no type information to lean on.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked]
  },
  {
    files: ['**/test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' }
  },
  {
    // Tests read replies through light-my-request's `res.json()`, which is `any` by design; typing each body would
    // be a cast that proves nothing, while the assertion on it checks the value at run time.
    files: ['**/test/**'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off'
    }
  }
)
