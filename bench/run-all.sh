#!/usr/bin/env bash
# Runs every benchmark (bench/<name>/run.ts) in turn; each prints its own table.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*/run.ts; do
  [ "$b" = bench/lib/run.ts ] && continue
  echo "=== $b"
  node --import tsx "$b"
done
