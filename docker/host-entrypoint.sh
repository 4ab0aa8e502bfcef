#!/bin/sh
# A domain-joined client host: the worker of the machine context, enrolling by
# itself. The account is the one named by the container's host name (ws01 of
# the sample forest, or host01..host40 of the directory's pool), unless
# HOST_ACCOUNT names another. It binds with Kerberos, as a host joined with
# realmd/adcli does: the keys of NAME$ from its keytab (written by the KDC
# container), tickets in a private cache, the CA's Kerberos endpoint; or, with
# HOST_BIND=simple, with its password (that name's line of the host passwords
# secret) for both.
#
# Environment (defaults for the compose lab):
#   HOST_ACCOUNT            the account's cn (default: the host name)
#   HOST_BIND               kerberos (default) or simple
#   HOST_KERBEROS_DIR       the KDC's keytabs and krb5.conf
#                           (/var/lib/autoenroll-kerberos; hosts/<name>.keytab)
#   HOST_PASSWORDS_FILE     "name password" lines (/run/secrets/host-passwords)
#   DIRECTORY_URL           ldap://directory:389, always with StartTLS
#   DIRECTORY_CA_FILE       the directory's TLS CA (/var/lib/autoenroll-trust/ca.pem)
#   HOST_INTERVAL, HOST_JITTER, HOST_DIRECTORY_CHECK   the worker's schedule
#                           (8h, 30m, 1m)
set -eu
name=${HOST_ACCOUNT:-$(hostname)}
passwords=${HOST_PASSWORDS_FILE:-/run/secrets/host-passwords}
bind=${HOST_BIND:-kerberos}
kerberos_dir=${HOST_KERBEROS_DIR:-/var/lib/autoenroll-kerberos}
ca_file=${DIRECTORY_CA_FILE:-/var/lib/autoenroll-trust/ca.pem}

log() { printf 'host-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
case $name in
    '' | *[!A-Za-z0-9-]*) die "the account name '$name' is not a host name (set HOST_ACCOUNT)" ;;
esac
[ -r "$ca_file" ] || die "$ca_file is missing (the directory writes it on its first start)"

umask 077
mkdir -p /etc/autoenroll /var/lib/autoenroll
chmod 0700 /etc/autoenroll
upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
case $bind in
    kerberos)
        keytab=$kerberos_dir/hosts/$name.keytab
        [ -s "$keytab" ] || die "$keytab is missing (the KDC writes one per computer of the pool)"
        [ -r "$kerberos_dir/krb5.conf" ] || die "$kerberos_dir/krb5.conf is missing"
        # The host's own copy, as `adcli join` leaves /etc/krb5.keytab.
        cp "$keytab" /etc/autoenroll/krb5.keytab.tmp
        mv /etc/autoenroll/krb5.keytab.tmp /etc/autoenroll/krb5.keytab
        rm -f /etc/autoenroll/host.secret
        global="krb5_conf = \"$kerberos_dir/krb5.conf\""
        credentials="bind = \"kerberos\"
keytab = \"krb5.keytab\"
principal = \"$upper\$\""
        enrollment='[enrollment]
authentication = ["kerberos"]'
        ;;
    simple)
        [ -r "$passwords" ] || die "$passwords is not readable (the host-passwords secret)"
        awk -v n="$name" '$1 == n && $2 != "" { print $2; found = 1; exit } END { exit !found }' \
            "$passwords" > /etc/autoenroll/host.secret.tmp \
            || die "$passwords has no line for $name"
        mv /etc/autoenroll/host.secret.tmp /etc/autoenroll/host.secret
        rm -f /etc/autoenroll/krb5.keytab
        global=
        credentials="bind = \"simple\"
user = \"CN=$name,CN=Computers,DC=corp,DC=example\"
password_file = \"host.secret\""
        enrollment='[enrollment]
authentication = ["password"]'
        ;;
    *) die "HOST_BIND must be kerberos or simple, found '$bind'" ;;
esac
cat > /etc/autoenroll/machine.toml.tmp <<CONF
# Written by host-entrypoint from the container's host name and environment.
context = "machine"
$global
trust_anchors_dir = "/usr/local/share/ca-certificates"
metrics_file = "/var/lib/autoenroll/autoenroll.prom"

[schedule]
interval = "${HOST_INTERVAL:-8h}"
jitter = "${HOST_JITTER:-30m}"
directory_check = "${HOST_DIRECTORY_CHECK:-1m}"

[directory]
url = "${DIRECTORY_URL:-ldap://directory:389}"
starttls = true
ca_file = "$ca_file"
timeout = "10s"
$credentials

$enrollment
CONF
mv /etc/autoenroll/machine.toml.tmp /etc/autoenroll/machine.toml
umask 022
log "account CN=$name,CN=Computers,DC=corp,DC=example, $bind bind"
exec autoenroll daemon --policy /etc/autoenroll/machine.toml
