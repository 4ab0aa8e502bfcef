#!/usr/bin/env bash
# The compose lab tested across containers (tests/compose.rs): builds the
# autoenroll binary (a debug build without the tests' fault injection), the
# images without pulling (scripts/images.sh), then runs the tests one lab at a
# time; then the tests that read the sample forest (tests/eligibility.rs and
# the forest-reading test of tests/directory.rs) against a directory container
# instead of a private slapd. Without a reachable Docker engine it says so and
# exits 0.
#
# Usage: scripts/compose-test.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "compose-test: skipped: no Docker engine is reachable (docker info failed)" >&2
    exit 0
fi
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif docker-compose version >/dev/null 2>&1; then
    compose=(docker-compose)
else
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
tested=$(date +%s)

# The directory container alone (no CA publishing into it, no host enrolling),
# on a free loopback port, for the tests that read the forest.
project=aesuite$$
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + $$ % 20000)))
work=$(mktemp -d)
down() {
    DIRECTORY_PORT=$port "${compose[@]}" -p "$project" down -v -t 5 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap down EXIT
DIRECTORY_PORT=$port "${compose[@]}" -p "$project" up -d --no-build directory
container=$(DIRECTORY_PORT=$port "${compose[@]}" -p "$project" ps -q directory)
for _ in $(seq 1 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && break
    sleep 1
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] \
    || { echo "compose-test: the directory container is not healthy" >&2; exit 1; }
docker cp "$container:/etc/ldap/tls/ca.pem" "$work/ca.pem"
AUTOENROLL_TEST_DIRECTORY_URL=ldap://127.0.0.1:$port AUTOENROLL_TEST_DIRECTORY_CA_FILE=$work/ca.pem \
    cargo test --locked --test eligibility --test directory
finished=$(date +%s)

echo "compose-test: binary $((built - started)) s, images $((imaged - built)) s, compose tests $((tested - imaged)) s, forest tests against the container $((finished - tested)) s" >&2
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^autoenroll(-directory|-base)?:' >&2 || true
