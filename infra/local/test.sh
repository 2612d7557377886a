#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/setup.sh
pnpm typecheck
pnpm lint
pnpm exec tap "$@"
