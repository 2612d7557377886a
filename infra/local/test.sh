#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/setup.sh
pnpm typecheck
pnpm lint
# tap compiles its plugin set on first use; build it now so the run does not load a stale one
# (with its TypeScript loader, which the tap config turns off in favour of tsx).
pnpm exec tap build >/dev/null
pnpm exec tap "$@"
