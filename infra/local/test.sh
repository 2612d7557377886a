#!/usr/bin/env bash
# The whole check in one command: setup, typecheck, lint and format of every package, then every test.
# The tests run as ONE tap run from the root (the include list in package.json), not `pnpm -r test`: one pool
# of `jobs` files for the whole repository keeps both cores busy to the end and prints one summary, where a
# run per package would wait for each package's slowest file (or oversubscribe the cores if run in parallel).
# `pnpm --filter <package> test` runs one package's tests alone with the same tap config.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/setup.sh
pnpm typecheck
pnpm lint
pnpm format:check
# tap compiles its plugin set on first use; build it now so the run does not load a stale one
# (with its TypeScript loader, which the tap config turns off in favour of tsx).
pnpm exec tap build >/dev/null
pnpm exec tap "$@"
