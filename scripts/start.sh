#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pnpm db:migrate
exec node --import tsx scripts/start-all.ts
