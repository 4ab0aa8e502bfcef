#!/usr/bin/env bash
# The Python tools the interoperability tests drive, in a virtualenv of their
# own: impacket (Fortra's DCE/RPC, NDR and Kerberos in Python, on which
# Certipy is built) and Certipy (certipy-ad, the AD CS tool of auditors),
# pinned. certipy-ad 5 declares Python >= 3.12 but installs and runs on 3.11
# (--ignore-requires-python; 5.0.4 is the version tried). Idempotent; prints
# nothing when the venv is ready. The venv is target/python-tools unless AUTOENROLL_PYTHON_TOOLS names
# another folder; tests/rpc.rs reads the same variable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AUTOENROLL_PYTHON_TOOLS:-target/python-tools}
impacket=0.13.1
certipy=5.0.4
if "$venv/bin/python" -c "from impacket import version; import sys; sys.exit(version.version != '$impacket')" 2>/dev/null \
  && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('certipy-ad') != '$certipy')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "impacket==$impacket"
"$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python "certipy-ad==$certipy"
