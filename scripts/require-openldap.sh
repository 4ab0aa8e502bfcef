#!/usr/bin/env bash
# Makes sure slapd, ldap-utils and openssl (used by the tests) are installed (Debian/Ubuntu). As root it
# installs them; otherwise it uses sudo when available, or prints the command.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if have slapd && have slapadd && have ldapsearch && have openssl; then
  exit 0
fi
install=(apt-get install -y --no-install-recommends slapd ldap-utils openssl)
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  "${install[@]}"
elif command -v sudo >/dev/null 2>&1; then
  sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  sudo env DEBIAN_FRONTEND=noninteractive "${install[@]}"
else
  echo "OpenLDAP is missing. As root, run:" >&2
  echo "  DEBIAN_FRONTEND=noninteractive ${install[*]}" >&2
  exit 1
fi
