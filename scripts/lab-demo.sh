#!/usr/bin/env bash
# The lab end to end: installs OpenLDAP when missing, builds, starts a private
# directory with the sample forest and its enterprise CA in ./lab, then shows
# autoenrollment at work: the templates of ws01, a pulse for ws01 and one for
# alice, `status`, a second pulse that has nothing to do, and the plan at a
# time past the renewal of ws01's certificates. The lab stays up; stop it with
# the printed command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-openldap.sh
cargo build --release --locked --quiet
bin=target/release/autoenroll
dir=${LAB_DIR:-lab}
rm -rf "$dir/stores"
"$bin" lab up --dir "$dir"
step() { echo; echo "== $*"; "$@"; }
step "$bin" templates --policy "$dir/ws01.toml"
step "$bin" pulse --policy "$dir/ws01.toml"
step "$bin" pulse --policy "$dir/alice.toml" --user
step "$bin" status --policy "$dir/ws01.toml" || true
step "$bin" pulse --policy "$dir/ws01.toml"
step "$bin" ca requests --config "$dir/ca.toml"
later=$(date -u -d '+50 minutes' +%Y-%m-%dT%H:%M:%SZ)
step "$bin" plan --policy "$dir/ws01.toml" --at "$later"
echo
echo "The lab is still running. Stop it with: $bin lab down --dir $dir"
