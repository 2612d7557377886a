import { defineConfig } from 'prisma/config'

// Only `prisma generate` runs here; migrations are applied by `pnpm db:migrate` (DESIGN.md, Data).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' }
})
