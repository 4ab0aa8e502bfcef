#!/usr/bin/env bash
# The Python tools the interoperability tests drive, in a virtualenv of their
# own: impacket (Fortra's DCE/RPC, NDR and Kerberos in Python, on which
# Certipy is built), pinned. Idempotent; prints nothing when the venv is
# ready. The venv is target/python-tools unless AUTOENROLL_PYTHON_TOOLS names
# another folder; tests/rpc.rs reads the same variable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AUTOENROLL_PYTHON_TOOLS:-target/python-tools}
impacket=0.13.1
if "$venv/bin/python" -c "from impacket import version; import sys; sys.exit(version.version != '$impacket')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "impacket==$impacket"
