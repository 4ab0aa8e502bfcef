#!/usr/bin/env bash
# The Debian package on this machine: builds it (scripts/package.sh),
# installs it with dpkg -i, checks what it installed and that nothing was
# started, runs the installed program (its version, the example policy, and
# a pulse and status of the lab's ws01), checks the units with
# systemd-analyze verify, then dpkg -r (the policy and the store stay) and
# dpkg --purge (nothing of the package stays). Needs root (through sudo when
# available); without it, says so and exits 0, like the compose tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    deb=$(scripts/package.sh | tail -n 1)
    exec sudo -n env AUTOENROLL_DEB="$deb" "$0"
  fi
  echo "test-package: installing a package needs root (or sudo without a password); skipped" >&2
  exit 0
fi

deb=${AUTOENROLL_DEB:-$(scripts/package.sh | tail -n 1)}
fail() {
  echo "test-package: FAILED: $*" >&2
  exit 1
}
say() { echo "test-package: $*" >&2; }

# Never overwrite or remove an autoenroll this script did not install.
if dpkg-query -W -f='${Status}' autoenroll 2>/dev/null | grep -q "install ok installed"; then
  fail "a package autoenroll is installed already; remove it first (dpkg -r autoenroll)"
fi
[ -e /usr/bin/autoenroll ] && fail "/usr/bin/autoenroll exists and is not from the package"
[ -e /etc/autoenroll ] && fail "/etc/autoenroll exists: not touching a host's policy"
[ -e /var/lib/autoenroll ] && fail "/var/lib/autoenroll exists: not touching a host's store"

lab=$(mktemp -d)
cleanup() {
  if [ -x /usr/bin/autoenroll ]; then
    /usr/bin/autoenroll lab down --dir "$lab/lab" >/dev/null 2>&1 || true
  fi
  if dpkg-query -W -f='${Status}' autoenroll 2>/dev/null | grep -q "installed"; then
    dpkg --purge autoenroll >/dev/null 2>&1 || true
  fi
  rm -rf "$lab"
}
trap cleanup EXIT

say "package: $deb"
dpkg-deb --info "$deb" | grep -E '^ (Package|Version|Depends|Section):' >&2
dpkg -i "$deb" >&2

# What is installed, with the modes asked for.
for f in /usr/bin/autoenroll \
  /usr/lib/systemd/system/autoenroll.service /usr/lib/systemd/system/autoenroll.path \
  /usr/lib/systemd/user/autoenroll-user.service /etc/autoenroll/machine.toml \
  /usr/share/bash-completion/completions/autoenroll \
  /usr/share/zsh/vendor-completions/_autoenroll \
  /usr/share/fish/vendor_completions.d/autoenroll.fish; do
  [ -f "$f" ] || fail "$f is not installed"
done
ls /usr/share/man/man1/autoenroll.1* >/dev/null 2>&1 || fail "no man page autoenroll(1)"
for page in autoenroll-pulse autoenroll-status autoenroll-daemon; do
  ls /usr/share/man/man1/$page.1* >/dev/null 2>&1 || fail "no man page $page(1)"
done
zcat -f /usr/share/man/man1/autoenroll-status.1* | grep -q -- 'json' || fail "autoenroll-status(1) does not describe --json"
[ "$(stat -c %a /var/lib/autoenroll)" = 700 ] || fail "/var/lib/autoenroll is $(stat -c %a /var/lib/autoenroll), not 0700"
dpkg-query -W -f='${Conffiles}\n' autoenroll | grep -q '/etc/autoenroll/machine.toml' ||
  fail "/etc/autoenroll/machine.toml is not a conffile"
grep -q '^ExecStart=/usr/bin/autoenroll daemon' /usr/lib/systemd/system/autoenroll.service ||
  fail "the machine unit does not run /usr/bin/autoenroll"
grep -rq /usr/local/bin /usr/lib/systemd/system/autoenroll.* /usr/lib/systemd/user/autoenroll-user.service &&
  fail "a packaged unit names /usr/local/bin"
bash -c 'source /usr/share/bash-completion/completions/autoenroll && complete -p autoenroll' >/dev/null ||
  fail "the bash completion does not load"

# Nothing was started: no worker runs, and the unit's condition skips the
# example policy (and would run on an edited one).
pgrep -f '^/usr/bin/autoenroll daemon' >/dev/null && fail "the installed worker runs after installation"
condition=$(sed -n "s/^ExecCondition=\/bin\/sh -c '\(.*\)'$/\1/p" /usr/lib/systemd/system/autoenroll.service)
[ -n "$condition" ] || fail "the machine unit has no ExecCondition"
if sh -c "$condition"; then fail "the unit's condition passes on the example policy"; fi

# The installed program runs.
/usr/bin/autoenroll --version >&2
set +e
out=$(/usr/bin/autoenroll status --policy /etc/autoenroll/machine.toml --json 2>/dev/null)
code=$?
set -e
[ "$code" = 1 ] || fail "status on the example policy exited $code, not 1"
echo "$out" | grep -q '"kind": *"config"' || fail "status on the example policy: $out"
if command -v slapd >/dev/null 2>&1; then
  /usr/bin/autoenroll lab up --dir "$lab/lab" >/dev/null
  /usr/bin/autoenroll pulse --policy "$lab/lab/ws01.toml" --json >"$lab/pulse.json" ||
    fail "the installed program's pulse of ws01 failed: $(cat "$lab/pulse.json")"
  grep -q '"event": "installed"' "$lab/pulse.json" || fail "the pulse installed nothing"
  /usr/bin/autoenroll status --policy "$lab/lab/ws01.toml" >&2 || fail "status of ws01 is not healthy"
  /usr/bin/autoenroll lab down --dir "$lab/lab" >/dev/null
else
  say "slapd is not installed: no lab pulse with the installed program"
fi

# The units, as installed.
if command -v systemd-analyze >/dev/null 2>&1; then
  said=$(systemd-analyze verify /usr/lib/systemd/system/autoenroll.service \
    /usr/lib/systemd/system/autoenroll.path 2>&1) || fail "systemd-analyze verify: $said"
  echo "$said" | grep autoenroll && fail "systemd-analyze verify: $said"
  mkdir -p "$lab/runtime"
  said=$(XDG_RUNTIME_DIR="$lab/runtime" systemd-analyze --user verify \
    /usr/lib/systemd/user/autoenroll-user.service 2>&1) || fail "systemd-analyze --user verify: $said"
  echo "$said" | grep autoenroll && fail "systemd-analyze --user verify: $said"
  say "systemd-analyze verify: the three units are clean"
else
  say "systemd-analyze is not installed: units not verified"
fi

# Remove: the program and units go; the policy and the store stay.
mkdir -p /var/lib/autoenroll/machine
dpkg -r autoenroll >&2
for f in /usr/bin/autoenroll /usr/lib/systemd/system/autoenroll.service /usr/share/man/man1/autoenroll.1.gz; do
  [ -e "$f" ] && fail "$f is still there after dpkg -r"
done
[ -f /etc/autoenroll/machine.toml ] || fail "dpkg -r removed the policy (a conffile stays until purge)"
[ -d /var/lib/autoenroll/machine ] || fail "dpkg -r removed the store"

# Purge: nothing stays.
dpkg --purge autoenroll >&2
for f in /etc/autoenroll /var/lib/autoenroll; do
  [ -e "$f" ] && fail "$f is still there after dpkg --purge"
done
left=$(find /etc/systemd /usr/lib/systemd -name '*autoenroll*' 2>/dev/null || true)
[ -z "$left" ] || fail "left after purge: $left"
dpkg-query -W -f='${Status}' autoenroll 2>/dev/null | grep -q installed && fail "dpkg still lists autoenroll"
say "ok: built, installed, ran, verified, removed and purged $(basename "$deb")"
