#!/bin/sh
# Entrypoint of the directory container: the emulated AD forest corp.example on
# OpenLDAP.
#
# 1. renders slapd.conf from ldif/slapd.conf.in (the same template the Rust lab
#    uses), with TLS when a certificate and key are mounted;
# 2. on first start (no data.mdb yet), loads ldif/forest.ldif with slapadd into a
#    scratch folder and moves the database into place only once the load has
#    succeeded, so a failed load never leaves a half-filled database behind;
# 3. replaces itself with slapd in the foreground (`slapd -d 0`), which stops
#    cleanly on SIGTERM.
#
# Environment:
#   DIRECTORY_ROOT_PW   rootpw of CN=admin,DC=corp,DC=example, plain text or a
#                       {SSHA} hash from slappasswd. The default below is for a
#                       disposable lab only: set your own for anything else.
#   DIRECTORY_TLS_DIR   folder checked for cert.pem + key.pem (+ ca.pem, optional);
#                       when both exist slapd offers StartTLS (default
#                       /etc/ldap/tls).
#   DIRECTORY_LDIF_DIR, DIRECTORY_DATA_DIR, DIRECTORY_RUN_DIR, DIRECTORY_CONF_DIR,
#   DIRECTORY_SCHEMA_DIR, DIRECTORY_MODULE_DIR, DIRECTORY_URLS
#                       override the image's folders and listen URLs (tests).
set -eu

LDIF_DIR=${DIRECTORY_LDIF_DIR:-/usr/share/autoenroll/ldif}
SCHEMA_DIR=${DIRECTORY_SCHEMA_DIR:-/etc/ldap/schema}
MODULE_DIR=${DIRECTORY_MODULE_DIR:-/usr/lib/ldap}
DATA_DIR=${DIRECTORY_DATA_DIR:-/var/lib/ldap}
RUN_DIR=${DIRECTORY_RUN_DIR:-/run/slapd}
CONF_DIR=${DIRECTORY_CONF_DIR:-/etc/ldap/autoenroll}
TLS_DIR=${DIRECTORY_TLS_DIR:-/etc/ldap/tls}
URLS=${DIRECTORY_URLS:-ldap:///}
# Lab only: a published default, so that `docker compose up` works out of the box.
ROOT_PW=${DIRECTORY_ROOT_PW:-lab-only-root-Passw0rd}

log() { printf 'directory: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $ROOT_PW in
    *'"'* | *'\'* | '') die "DIRECTORY_ROOT_PW must be non-empty and contain no \" or \\" ;;
esac
case $ROOT_PW in
    *'
'*) die "DIRECTORY_ROOT_PW must be a single line" ;;
esac
for f in slapd.conf.in ad.schema rootdse.ldif forest.ldif; do
    [ -r "$LDIF_DIR/$f" ] || die "$LDIF_DIR/$f is missing"
done

# As root, slapd binds its port and then runs as the openldap user; as anyone
# else it runs as that user.
if [ "$(id -u)" = 0 ]; then
    SLAPD_USER_ARGS="-u openldap -g openldap"
else
    SLAPD_USER_ARGS=
fi
own() {
    if [ -n "$SLAPD_USER_ARGS" ]; then chown -R openldap:openldap "$@"; fi
}

mkdir -p "$DATA_DIR" "$RUN_DIR" "$CONF_DIR"

# TLS: both files or none.
TLS_LINES=$RUN_DIR/tls.conf
: > "$TLS_LINES"
if [ -f "$TLS_DIR/cert.pem" ] && [ -f "$TLS_DIR/key.pem" ]; then
    # Private copies that the openldap user can read, whatever the mount's owner.
    mkdir -p "$RUN_DIR/tls"
    cp "$TLS_DIR/cert.pem" "$RUN_DIR/tls/cert.pem"
    cp "$TLS_DIR/key.pem" "$RUN_DIR/tls/key.pem"
    chmod 0600 "$RUN_DIR/tls/key.pem"
    {
        printf 'TLSCertificateFile "%s"\n' "$RUN_DIR/tls/cert.pem"
        printf 'TLSCertificateKeyFile "%s"\n' "$RUN_DIR/tls/key.pem"
        if [ -f "$TLS_DIR/ca.pem" ]; then
            cp "$TLS_DIR/ca.pem" "$RUN_DIR/tls/ca.pem"
            printf 'TLSCACertificateFile "%s"\n' "$RUN_DIR/tls/ca.pem"
        fi
    } >> "$TLS_LINES"
    log "TLS enabled (StartTLS) with $TLS_DIR/cert.pem"
elif [ -e "$TLS_DIR/cert.pem" ] || [ -e "$TLS_DIR/key.pem" ]; then
    die "$TLS_DIR needs both cert.pem and key.pem"
fi

# Escapes a value for the replacement side of a sed s|...|...| command.
sed_value() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

# render <data dir> <output file>
render() {
    sed -e "s|@LDIF_DIR@|$(sed_value "$LDIF_DIR")|g" \
        -e "s|@SCHEMA_DIR@|$(sed_value "$SCHEMA_DIR")|g" \
        -e "s|@MODULE_DIR@|$(sed_value "$MODULE_DIR")|g" \
        -e "s|@DATA_DIR@|$(sed_value "$1")|g" \
        -e "s|@RUN_DIR@|$(sed_value "$RUN_DIR")|g" \
        -e "s|@ROOT_PW@|$(sed_value "$ROOT_PW")|g" \
        -e "/^@TLS@\$/{r $TLS_LINES" -e 'd}' \
        "$LDIF_DIR/slapd.conf.in" > "$2.tmp"
    mv "$2.tmp" "$2"
}

CONF=$CONF_DIR/slapd.conf
render "$DATA_DIR" "$CONF"
chmod 0640 "$CONF"
own "$CONF" "$RUN_DIR"
slaptest -Q -u -f "$CONF" || die "slaptest rejected $CONF"

if [ ! -e "$DATA_DIR/data.mdb" ]; then
    log "empty database: loading $LDIF_DIR/forest.ldif"
    LOAD_DIR=$DATA_DIR/.initial-load
    rm -rf "$LOAD_DIR"
    mkdir -p "$LOAD_DIR"
    render "$LOAD_DIR" "$CONF_DIR/slapd-load.conf"
    slapadd -q -f "$CONF_DIR/slapd-load.conf" -l "$LDIF_DIR/forest.ldif" \
        || die "slapadd could not load forest.ldif"
    mv "$LOAD_DIR/data.mdb" "$DATA_DIR/data.mdb"
    rm -rf "$LOAD_DIR" "$CONF_DIR/slapd-load.conf"
    log "forest loaded"
fi
own "$DATA_DIR"

log "starting slapd on $URLS"
# shellcheck disable=SC2086 # SLAPD_USER_ARGS is empty or two options
exec slapd -d 0 -h "$URLS" -f "$CONF" $SLAPD_USER_ARGS
