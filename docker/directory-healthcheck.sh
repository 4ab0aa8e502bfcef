#!/bin/sh
# Healthy when slapd answers a rootDSE search with the AD naming contexts, over
# StartTLS (verified against the lab CA) whenever the directory has TLS.
set -eu
RUN_DIR=${DIRECTORY_RUN_DIR:-/run/slapd}
if [ -f "$RUN_DIR/tls/cert.pem" ]; then
    if [ -f "$RUN_DIR/tls/ca.pem" ]; then
        LDAPTLS_CACERT=$RUN_DIR/tls/ca.pem
        export LDAPTLS_CACERT
    fi
    set -- -ZZ
else
    set --
fi
ldapsearch -x "$@" -o nettimeout=4 -LLL -H ldap://localhost/ -b "" -s base configurationNamingContext \
    | grep -q '^configurationNamingContext:'
