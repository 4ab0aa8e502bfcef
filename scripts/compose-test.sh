#!/usr/bin/env bash
# The compose lab tested across containers (tests/compose.rs): builds the
# autoenroll binary (a debug build without the tests' fault injection), the
# images without pulling (scripts/images.sh), then runs the tests one lab at a
# time. Without a reachable Docker engine it says so and exits 0.
#
# Usage: scripts/compose-test.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "compose-test: skipped: no Docker engine is reachable (docker info failed)" >&2
    exit 0
fi
if ! docker compose version >/dev/null 2>&1 && ! docker-compose version >/dev/null 2>&1; then
    echo "compose-test: skipped: neither \`docker compose\` nor \`docker-compose\` works" >&2
    exit 0
fi

profile=debug
cargo_args=(--locked --bin autoenroll)
if [ "${1:-}" = --release ]; then
    profile=release
    cargo_args+=(--release)
fi
target=${CARGO_TARGET_DIR:-target}

started=$(date +%s)
cargo build "${cargo_args[@]}"
built=$(date +%s)
scripts/images.sh --binary "$target/$profile/autoenroll"
imaged=$(date +%s)
AUTOENROLL_COMPOSE_TESTS=1 cargo test --locked --test compose -- --test-threads=1 --nocapture
finished=$(date +%s)

echo "compose-test: binary $((built - started)) s, images $((imaged - built)) s, tests $((finished - imaged)) s" >&2
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^autoenroll(-directory|-base)?:' >&2 || true
