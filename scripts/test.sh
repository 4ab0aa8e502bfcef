#!/usr/bin/env bash
# Runs every test: unit tests, table tests, and the integration tests against
# private slapd instances (installs OpenLDAP first when it is missing), then
# builds every fuzz target and runs it over its seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-openldap.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
scripts/fuzz.sh check
