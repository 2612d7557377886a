#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/setup.sh
pnpm db:migrate
exec node --import tsx infra/local/start-all.ts
