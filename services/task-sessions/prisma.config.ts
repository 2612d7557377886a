import { defineConfig } from 'prisma/config'

// Only `prisma generate` runs here; migrations are applied by `pnpm db:migrate` (docs/adr/0001-migrations-without-prisma-migrate.md).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' }
})
