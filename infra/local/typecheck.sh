#!/usr/bin/env bash
# One TypeScript program per service (each declares its own Prisma client on FastifyInstance),
# plus one for packages, infra and bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
for project in tsconfig.json services/*/tsconfig.json bench/*/tsconfig.json; do
  [ -f "$project" ] || continue
  echo "typecheck $project"
  pnpm exec tsc -p "$project" --noEmit || status=1
done
exit $status
