#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed with `cargo install
# --locked` when missing): the release binary, the units from systemd/ with
# ExecStart= at /usr/bin, the man pages and shell completions generated from
# the command line's definition, the example policy. Prints the .deb's path
# on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install --locked cargo-deb)" >&2
  cargo install --locked cargo-deb >&2
fi
# The shipped build: release, no fault injection (the feature is only ever
# turned on by the tests' dev-dependency).
cargo build --locked --release --bin autoenroll >&2
staging=target/package
rm -rf "$staging"
mkdir -p "$staging/systemd"
for unit in systemd/*.service systemd/*.path; do
  sed 's|/usr/local/bin/autoenroll|/usr/bin/autoenroll|g' "$unit" >"$staging/systemd/$(basename "$unit")"
done
if grep -q /usr/local/bin "$staging"/systemd/*; then
  echo "a unit still names /usr/local/bin" >&2
  exit 1
fi
target/release/autoenroll generate-assets --dir "$staging" >&2
# --no-build: the binary above; cargo-deb strips it and compresses the man
# pages. It prints the .deb's path.
mkdir -p target/debian
deb=$(cargo deb --no-build --no-dbgsym --no-separate-debug-symbols --output target/debian/ | tail -n 1)
test -f "$deb"
echo "$deb"
