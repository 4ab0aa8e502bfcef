#!/usr/bin/env bash
# Runs every test: unit tests, table tests, and the integration tests against
# private servers (slapd, an MIT KDC, a Samba AD DC, dnsmasq; installed first
# when missing), then builds every fuzz target and runs it over its seeds, then
# the Debian package built, installed, run and purged (skipped with a message
# without root), then the compose lab across containers (skipped with a
# message without Docker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-openldap.sh
# impacket in a virtualenv, for the interoperability checks of tests/rpc.rs.
scripts/python-tools.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
scripts/fuzz.sh check
scripts/test-package.sh
# The release binary test-package.sh built goes into the images.
scripts/compose-test.sh --release
