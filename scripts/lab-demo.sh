#!/usr/bin/env bash
# The lab end to end: installs OpenLDAP when missing, builds, starts a private
# directory with the sample forest in ./lab, and shows `autoenroll templates`
# for each sample account, then the plan of ws01. The lab stays up; stop it with the printed command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/require-openldap.sh
cargo build --release --locked --quiet
bin=target/release/autoenroll
dir=${LAB_DIR:-lab}
"$bin" lab up --dir "$dir"
for account in ws01 web01 nodns01 alice bob carol; do
  echo
  echo "== autoenroll templates --policy $dir/$account.toml"
  "$bin" templates --policy "$dir/$account.toml"
done
echo
echo "== autoenroll plan --policy $dir/ws01.toml   (what a pulse would do; enrollment comes with the CA)"
"$bin" plan --policy "$dir/ws01.toml"
echo
echo "The lab is still running. Stop it with: $bin lab down --dir $dir"
