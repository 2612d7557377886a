#!/usr/bin/env bash
# Everything `npm start` and `npm test` need on a fresh machine with only Node: pnpm, the local
# servers, dependencies and the generated Prisma clients.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v pnpm >/dev/null 2>&1; then
  echo "[setup] installing pnpm"
  npm i -g pnpm@10 >/dev/null 2>&1 || npm i -g pnpm@10
fi
bash infra/local/up.sh
pnpm install --frozen-lockfile --reporter=silent
# Prisma's CLI would download a schema engine; generate does not need one (DESIGN.md, Data).
export PRISMA_SCHEMA_ENGINE_BINARY="$PWD/infra/local/prisma-engine-stub" PRISMA_HIDE_UPDATE_MESSAGE=1
pnpm -r --if-present --reporter=silent generate
