#!/bin/sh
# Entrypoint of the directory container: the emulated AD forest corp.example on
# OpenLDAP.
#
# 1. renders slapd.conf from ldif/slapd.conf.in (the same template the Rust lab
#    uses), with StartTLS from the certificate and key in DIRECTORY_TLS_DIR; when
#    that folder has neither and DIRECTORY_TLS_GENERATE is true, it first makes a
#    lab TLS CA and a server certificate there (kept across restarts) and copies
#    the lab CA's certificate into DIRECTORY_TRUST_DIR for the other containers;
# 2. on first start (no data.mdb yet), loads ldif/forest.ldif and the host pool
#    (pool.ldif, its passwords from DIRECTORY_POOL_PASSWORDS_FILE) with slapadd
#    into a scratch folder and moves the database into place only once the load
#    has succeeded, so a failed load never leaves a half-filled database behind;
# 3. replaces itself with slapd in the foreground (`slapd -d 0`), which stops
#    cleanly on SIGTERM.
#
# Environment:
#   DIRECTORY_ROOT_PW_FILE  file holding the rootpw of CN=admin,DC=corp,DC=example
#                       (a Compose secret); else DIRECTORY_ROOT_PW, plain text or
#                       a {SSHA} hash from slappasswd. The default below is for a
#                       disposable lab only: set your own for anything else.
#   DIRECTORY_TLS_DIR   folder checked for cert.pem + key.pem (+ ca.pem, optional);
#                       when both exist slapd offers StartTLS (default
#                       /etc/ldap/tls).
#   DIRECTORY_TLS_GENERATE  true: make a lab CA and cert.pem/key.pem in
#                       DIRECTORY_TLS_DIR when both are missing (default false).
#   DIRECTORY_TLS_NAMES extra DNS names of the generated server certificate
#                       (comma-separated; directory, localhost, 127.0.0.1 and the
#                       container's host name are always in it).
#   DIRECTORY_TRUST_DIR folder that receives ca.pem, the certificate of the CA of
#                       the directory's TLS certificate (optional).
#   DIRECTORY_POOL_LDIF the host pool (default <LDIF_DIR>/../pool/pool.ldif; loaded
#                       when it exists).
#   DIRECTORY_POOL_PASSWORDS_FILE  "name password" lines giving each pool
#                       account its userPassword; an account without a line gets
#                       none and cannot bind.
#   DIRECTORY_KERBEROS_KEYTAB  the keytab of ldap/<DIRECTORY_SASL_HOST> (written
#                       by the KDC container): when set, slapd offers SASL
#                       GSSAPI (channel binding on TLS) and maps a principal
#                       NAME to the account whose sAMAccountName is NAME
#   DIRECTORY_KRB5_CONF the realm's krb5.conf (with the keytab)
#   DIRECTORY_SASL_HOST the host part of the directory's SPN: the name clients
#                       use in its URL (default directory)
#   DIRECTORY_REALM     the Kerberos realm (default CORP.EXAMPLE)
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
TLS_GENERATE=${DIRECTORY_TLS_GENERATE:-false}
TRUST_DIR=${DIRECTORY_TRUST_DIR:-}
POOL_LDIF=${DIRECTORY_POOL_LDIF:-$LDIF_DIR/../pool/pool.ldif}
POOL_PASSWORDS=${DIRECTORY_POOL_PASSWORDS_FILE:-}
if [ -n "${DIRECTORY_ROOT_PW_FILE:-}" ]; then
    [ -r "$DIRECTORY_ROOT_PW_FILE" ] || { printf 'directory: error: %s is not readable\n' "$DIRECTORY_ROOT_PW_FILE" >&2; exit 1; }
    # One line; a trailing newline is not part of the password.
    ROOT_PW=$(head -n 1 "$DIRECTORY_ROOT_PW_FILE")
else
    # Lab only: a published default, so that `docker compose up` works out of the box.
    ROOT_PW=${DIRECTORY_ROOT_PW:-lab-only-root-Passw0rd}
fi

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

# generate_tls: a lab TLS CA (ca-key.pem stays in TLS_DIR) and a server
# certificate for the names the containers and the host machine use.
generate_tls() {
    log "no TLS certificate in $TLS_DIR: making a lab TLS CA and a server certificate"
    mkdir -p "$TLS_DIR"
    work=$(mktemp -d)
    names="DNS:directory,DNS:localhost,IP:127.0.0.1"
    # libldap checks a connection to localhost against the machine's host name
    # (the healthcheck's), so that name is in the certificate too.
    own_name=$(hostname)
    case $own_name in
        directory | '' | *[!A-Za-z0-9.-]*) ;;
        *) names="$names,DNS:$own_name" ;;
    esac
    old_ifs=$IFS
    IFS=,
    for n in ${DIRECTORY_TLS_NAMES:-}; do
        case $n in
            '') ;;
            *[!A-Za-z0-9.-]*) die "DIRECTORY_TLS_NAMES: $n is not a DNS name" ;;
            *) names="$names,DNS:$n" ;;
        esac
    done
    IFS=$old_ifs
    umask 077
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=autoenroll compose lab TLS CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null \
        || die "openssl could not make the lab TLS CA"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=directory" -keyout "$work/key.pem" -out "$work/req.pem" 2>/dev/null \
        || die "openssl could not make the directory's key"
    printf '[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
        "$names" > "$work/ext.cnf"
    openssl x509 -req -in "$work/req.pem" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
        -CAcreateserial -days 825 -extfile "$work/ext.cnf" -extensions v3 \
        -out "$work/cert.pem" 2>/dev/null \
        || die "openssl could not sign the directory's certificate"
    umask 022
    chmod 0644 "$work/ca.pem" "$work/cert.pem"
    # The key last: a half-made folder is made again on the next start.
    for f in ca-key.pem ca.pem cert.pem key.pem; do mv "$work/$f" "$TLS_DIR/$f"; done
    rm -rf "$work"
}

if [ ! -e "$TLS_DIR/cert.pem" ] && [ ! -e "$TLS_DIR/key.pem" ]; then
    case $TLS_GENERATE in
        true) generate_tls ;;
        false) ;;
        *) die "DIRECTORY_TLS_GENERATE must be true or false, found $TLS_GENERATE" ;;
    esac
fi
if [ -n "$TRUST_DIR" ]; then
    [ -f "$TLS_DIR/ca.pem" ] || die "DIRECTORY_TRUST_DIR is set but $TLS_DIR/ca.pem is missing"
    mkdir -p "$TRUST_DIR"
    cp "$TLS_DIR/ca.pem" "$TRUST_DIR/ca.pem.tmp"
    chmod 0644 "$TRUST_DIR/ca.pem.tmp"
    mv "$TRUST_DIR/ca.pem.tmp" "$TRUST_DIR/ca.pem"
fi

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

# SASL GSSAPI: both lines, or none. The keytab is the KDC container's; slapd
# reads a private copy its own user owns.
SASL_LINES=$RUN_DIR/sasl.conf
SASL_ACCESS_LINES=$RUN_DIR/sasl-access.conf
: > "$SASL_LINES"
: > "$SASL_ACCESS_LINES"
if [ -n "${DIRECTORY_KERBEROS_KEYTAB:-}" ]; then
    sasl_host=${DIRECTORY_SASL_HOST:-directory}
    realm=${DIRECTORY_REALM:-CORP.EXAMPLE}
    for v in "$sasl_host" "$realm"; do
        case $v in
            '' | *[!A-Za-z0-9.-]*) die "'$v' is not a host name or realm" ;;
        esac
    done
    [ -s "$DIRECTORY_KERBEROS_KEYTAB" ] || die "$DIRECTORY_KERBEROS_KEYTAB is missing (the KDC writes it on its first start)"
    [ -r "${DIRECTORY_KRB5_CONF:-}" ] || die "DIRECTORY_KRB5_CONF must name the realm's krb5.conf"
    cp "$DIRECTORY_KERBEROS_KEYTAB" "$RUN_DIR/ldap.keytab"
    chmod 0600 "$RUN_DIR/ldap.keytab"
    export KRB5_KTNAME="FILE:$RUN_DIR/ldap.keytab"
    export KRB5_CONFIG="$DIRECTORY_KRB5_CONF"
    mkdir -p "$RUN_DIR/rcache"
    export KRB5RCACHEDIR="$RUN_DIR/rcache"
    realm_lower=$(printf '%s' "$realm" | tr '[:upper:]' '[:lower:]')
    # The same settings as the Rust lab's slapd (src/lab/kdc.rs).
    {
        printf 'sasl-realm\t%s\n' "$realm"
        printf 'sasl-host\t%s\n' "$sasl_host"
        printf 'sasl-cbinding\ttls-endpoint\n'
        printf 'authz-regexp\t"^uid=([^,/]+),cn=%s,cn=gssapi,cn=auth$"\n' "$realm_lower"
        printf '\t"ldap:///DC=corp,DC=example??sub?(sAMAccountName=$1)"\n'
    } > "$SASL_LINES"
    printf 'access to dn.subtree="DC=corp,DC=example" attrs=entry,sAMAccountName,objectClass\n\tby anonymous auth\n\tby * break\n' \
        > "$SASL_ACCESS_LINES"
    log "SASL GSSAPI enabled as ldap/$sasl_host@$realm"
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
        -e "/^@SASL@\$/{r $SASL_LINES" -e 'd}' \
        -e "/^@SASL_ACCESS@\$/{r $SASL_ACCESS_LINES" -e 'd}' \
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
    if [ -r "$POOL_LDIF" ]; then
        # Each pool account's password from the secret; an account without a
        # line keeps no userPassword (it cannot bind).
        awk -v pwfile="${POOL_PASSWORDS:-/dev/null}" '
            BEGIN {
                while ((getline line < pwfile) > 0) {
                    if (line ~ /^[ \t]*(#|$)/) continue
                    split(line, f, /[ \t]+/)
                    if (f[1] != "" && f[2] != "") pw[f[1]] = f[2]
                }
            }
            /^cn: / { cn = substr($0, 5) }
            /^userPassword: @PASSWORD@$/ {
                if (cn in pw) { print "userPassword: " pw[cn]; set++ } else missing++
                next
            }
            { print }
            END { printf "directory: pool: %d passwords set, %d accounts without one\n", set, missing > "/dev/stderr" }
        ' "$POOL_LDIF" > "$LOAD_DIR/pool.ldif" || die "could not render $POOL_LDIF"
        slapadd -q -f "$CONF_DIR/slapd-load.conf" -l "$LOAD_DIR/pool.ldif" \
            || die "slapadd could not load $POOL_LDIF"
        rm -f "$LOAD_DIR/pool.ldif"
    fi
    mv "$LOAD_DIR/data.mdb" "$DATA_DIR/data.mdb"
    rm -rf "$LOAD_DIR" "$CONF_DIR/slapd-load.conf"
    log "forest loaded"
fi
own "$DATA_DIR"

log "starting slapd on $URLS"
# shellcheck disable=SC2086 # SLAPD_USER_ARGS is empty or two options
exec slapd -d 0 -h "$URLS" -f "$CONF" $SLAPD_USER_ARGS
