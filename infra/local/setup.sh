#!/usr/bin/env bash
# Everything `npm start` and `npm test` need on a fresh machine with only Node: pnpm, the local
# servers, dependencies, the generated Prisma clients and Debian's docker-compose (for the compose check).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v pnpm >/dev/null 2>&1; then
  echo "[setup] installing pnpm"
  npm i -g pnpm@10 >/dev/null 2>&1 || npm i -g pnpm@10
fi
bash infra/local/up.sh
# infra/test/compose.test.ts runs `docker-compose config` (Debian's Compose; no Docker daemon needed).
source infra/local/packages.sh
need_pkg docker-compose docker-compose || say "the compose check (infra/test/compose.test.ts) fails until docker-compose is installed"
pnpm install --frozen-lockfile --reporter=silent
# Prisma's CLI would download a schema engine; generate does not need one (docs/adr/0001-migrations-without-prisma-migrate.md).
export PRISMA_SCHEMA_ENGINE_BINARY="$PWD/infra/local/prisma-engine-stub" PRISMA_HIDE_UPDATE_MESSAGE=1
pnpm -r --if-present --reporter=silent generate
