#!/bin/sh
# A domain-joined client host: the worker of the machine context, enrolling by
# itself. The account is the one named by the container's host name (ws01 of
# the sample forest, or host01..host40 of the directory's pool), unless
# HOST_ACCOUNT names another; its password is that name's line of the host
# passwords secret.
#
# Environment (defaults for the compose lab):
#   HOST_ACCOUNT            the account's cn (default: the host name)
#   HOST_PASSWORDS_FILE     "name password" lines (/run/secrets/host-passwords)
#   DIRECTORY_URL           ldap://directory:389, always with StartTLS
#   DIRECTORY_CA_FILE       the directory's TLS CA (/var/lib/autoenroll-trust/ca.pem)
#   HOST_INTERVAL, HOST_JITTER, HOST_DIRECTORY_CHECK   the worker's schedule
#                           (8h, 30m, 1m)
set -eu
name=${HOST_ACCOUNT:-$(hostname)}
passwords=${HOST_PASSWORDS_FILE:-/run/secrets/host-passwords}
ca_file=${DIRECTORY_CA_FILE:-/var/lib/autoenroll-trust/ca.pem}

log() { printf 'host-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
case $name in
    '' | *[!A-Za-z0-9-]*) die "the account name '$name' is not a host name (set HOST_ACCOUNT)" ;;
esac
[ -r "$passwords" ] || die "$passwords is not readable (the host-passwords secret)"
[ -r "$ca_file" ] || die "$ca_file is missing (the directory writes it on its first start)"

umask 077
mkdir -p /etc/autoenroll /var/lib/autoenroll
chmod 0700 /etc/autoenroll
awk -v n="$name" '$1 == n && $2 != "" { print $2; found = 1; exit } END { exit !found }' \
    "$passwords" > /etc/autoenroll/host.secret.tmp \
    || die "$passwords has no line for $name"
mv /etc/autoenroll/host.secret.tmp /etc/autoenroll/host.secret
cat > /etc/autoenroll/machine.toml.tmp <<CONF
# Written by host-entrypoint from the container's host name and environment.
context = "machine"
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
bind = "simple"
user = "CN=$name,CN=Computers,DC=corp,DC=example"
password_file = "host.secret"
CONF
mv /etc/autoenroll/machine.toml.tmp /etc/autoenroll/machine.toml
umask 022
log "account CN=$name,CN=Computers,DC=corp,DC=example"
exec autoenroll daemon --policy /etc/autoenroll/machine.toml
