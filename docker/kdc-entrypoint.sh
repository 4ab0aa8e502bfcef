#!/bin/sh
# Entrypoint of the KDC container: the realm CORP.EXAMPLE of the emulated
# forest on MIT Kerberos (krb5kdc), as AD's domain controllers serve it.
#
# 1. on first start (no database in KDC_DATA_DIR), creates the realm's
#    database with a random master key kept in its stash file (in the volume,
#    never in the image);
# 2. on every start, adds the principals that are missing and writes the
#    keytabs that are missing (keys are never changed once written, so that
#    the keytabs handed out earlier stay valid):
#      ldap/<directory host>      directory/ldap.keytab   (slapd, SASL GSSAPI)
#      HTTP/<CA host>             ca/http.keytab          (the CA's Kerberos
#                                                          enrollment endpoint)
#      NAME$ + host/name.<domain> hosts/<name>.keytab     (each computer: ws01
#                                                          and host01..hostNN,
#                                                          as `adcli join` writes
#                                                          /etc/krb5.keytab)
#    and krb5.conf, the realm's client configuration every container uses;
# 3. replaces itself with krb5kdc in the foreground, on port 88 (UDP and TCP).
#
# Lab only: every container that mounts the keytab volume can read every
# keytab in it, as every host of the compose lab can read every line of the
# host passwords secret. A real host holds its own keytab alone.
#
# Environment:
#   KDC_REALM           the realm (default CORP.EXAMPLE)
#   KDC_DOMAIN          the DNS domain of the computers (default corp.example)
#   KDC_HOST            the KDC's name in krb5.conf (default kdc)
#   KDC_DIRECTORY_HOST  the directory's host name in its URL (default directory)
#   KDC_CA_HOST         the CA's host name in its URL (default ca)
#   KDC_COMPUTERS       computer names besides the pool (default ws01)
#   KDC_POOL            the pool's size, host01..hostNN (default 40)
#   KDC_DATA_DIR        the database (default /var/lib/krb5kdc)
#   KDC_KEYTAB_DIR      keytabs and krb5.conf (default /var/lib/autoenroll-kerberos)
set -eu

REALM=${KDC_REALM:-CORP.EXAMPLE}
DOMAIN=${KDC_DOMAIN:-corp.example}
KDC_NAME=${KDC_HOST:-kdc}
DIRECTORY_HOST=${KDC_DIRECTORY_HOST:-directory}
CA_HOST=${KDC_CA_HOST:-ca}
COMPUTERS=${KDC_COMPUTERS:-ws01}
POOL=${KDC_POOL:-40}
DATA=${KDC_DATA_DIR:-/var/lib/krb5kdc}
KEYTABS=${KDC_KEYTAB_DIR:-/var/lib/autoenroll-kerberos}

log() { printf 'kdc: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for name in "$REALM" "$DOMAIN" "$KDC_NAME" "$DIRECTORY_HOST" "$CA_HOST" $COMPUTERS; do
    case $name in
        '' | *[!A-Za-z0-9.-]*) die "'$name' is not a host, domain or realm name" ;;
    esac
done
case $POOL in
    '' | *[!0-9]*) die "KDC_POOL must be a number, found '$POOL'" ;;
esac

umask 077
mkdir -p "$DATA" "$KEYTABS/directory" "$KEYTABS/ca" "$KEYTABS/hosts"
chmod 0700 "$DATA"
# The folders are traversable, the keytabs in them 0600 (root reads them in
# every container; the directory and the CA copy theirs for their own user).
chmod 0755 "$KEYTABS" "$KEYTABS/directory" "$KEYTABS/ca" "$KEYTABS/hosts"

cat > "$DATA/kdc.conf" <<CONF
[kdcdefaults]
	kdc_ports = 88
	kdc_tcp_ports = 88

[realms]
	$REALM = {
		database_name = $DATA/principal
		key_stash_file = $DATA/stash
		acl_file = $DATA/kadm5.acl
		max_life = 10h
		max_renewable_life = 7d
	}

[logging]
	kdc = STDERR
CONF
: > "$DATA/kadm5.acl"

# The clients' configuration: this realm's KDC by name, no DNS lookups of
# KDCs or realms, no reverse lookups or canonicalisation of service names
# (the SPN is the name in the URL), TCP first.
lower_realm=$(printf '%s' "$REALM" | tr '[:upper:]' '[:lower:]')
cat > "$KEYTABS/krb5.conf.tmp" <<CONF
# Written by the KDC container: the compose lab's realm.
[libdefaults]
	default_realm = $REALM
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1

[realms]
	$REALM = {
		kdc = $KDC_NAME:88
	}

[domain_realm]
	.$DOMAIN = $REALM
	$DOMAIN = $REALM
	.$lower_realm = $REALM
	$DIRECTORY_HOST = $REALM
	$CA_HOST = $REALM
CONF
chmod 0644 "$KEYTABS/krb5.conf.tmp"
mv "$KEYTABS/krb5.conf.tmp" "$KEYTABS/krb5.conf"

export KRB5_CONFIG="$KEYTABS/krb5.conf"
export KRB5_KDC_PROFILE="$DATA/kdc.conf"

if [ ! -e "$DATA/principal" ]; then
    log "no database: creating the realm $REALM"
    master=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    kdb5_util create -s -r "$REALM" -P "$master" >/dev/null \
        || die "kdb5_util could not create the realm's database"
    unset master
fi

# One kadmin.local for all the queries: the principals that are missing, then
# the keytabs that are missing.
queries=$(mktemp)
existing=$(kadmin.local -q listprincs 2>/dev/null)
want() { # want PRINCIPAL: add it with a random key unless it exists
    printf '%s\n' "$existing" | grep -qxF "$1@$REALM" \
        || printf 'addprinc -randkey +requires_preauth %s\n' "$1" >> "$queries"
}
keytab() { # keytab FILE PRINCIPAL...: write FILE unless it exists
    file=$1
    shift
    [ -s "$file" ] && return 0
    rm -f "$file.tmp"
    for p in "$@"; do printf 'ktadd -norandkey -k %s %s\n' "$file.tmp" "$p" >> "$queries"; done
    printf '%s\n' "$file" >> "$queries.files"
}
: > "$queries.files"
ldap=ldap/$DIRECTORY_HOST
http=HTTP/$CA_HOST
want "$ldap"
want "$http"
computers=$COMPUTERS
n=1
while [ "$n" -le "$POOL" ]; do
    computers="$computers $(printf 'host%02d' "$n")"
    n=$((n + 1))
done
for c in $computers; do
    upper=$(printf '%s' "$c" | tr '[:lower:]' '[:upper:]')
    want "$upper\$"
    want "host/$c.$DOMAIN"
done
# The keytabs after every principal exists.
keytab "$KEYTABS/directory/ldap.keytab" "$ldap"
keytab "$KEYTABS/ca/http.keytab" "$http"
for c in $computers; do
    upper=$(printf '%s' "$c" | tr '[:lower:]' '[:upper:]')
    keytab "$KEYTABS/hosts/$c.keytab" "$upper\$" "host/$c.$DOMAIN"
done
if [ -s "$queries" ]; then
    out=$(kadmin.local < "$queries" 2>&1) || die "kadmin.local failed: $out"
    # kadmin.local exits 0 when a query fails; its messages say so.
    if printf '%s\n' "$out" | grep -qiE 'error|cannot|failed'; then
        die "kadmin.local: $out"
    fi
fi
while read -r file; do
    [ -s "$file.tmp" ] || die "kadmin.local wrote no $file"
    chmod 0600 "$file.tmp"
    mv "$file.tmp" "$file"
done < "$queries.files"
rm -f "$queries" "$queries.files"
log "realm $REALM: $(printf '%s\n' $computers | wc -l) computers, $ldap, $http"

exec krb5kdc -n -r "$REALM"
