#!/bin/sh
# The emulated enterprise CA corp-CA: writes its configuration from the
# environment, publishes itself to the directory (`ca init`, idempotent: the
# key and certificates in the state volume are kept) and serves MS-WSTEP over
# HTTPS on 8443 and the CA certificate and CRL over HTTP on 8080.
#
# Environment (defaults for the compose lab):
#   CA_SERVICE_PASSWORD_FILE  password of the CA's service account (a Compose
#                       secret; default /run/secrets/ca-svc-password)
#   CA_SERVICE_ACCOUNT  its DN (CN=ca-svc,CN=Users,DC=corp,DC=example)
#   DIRECTORY_URL       ldap://directory:389, always with StartTLS
#   DIRECTORY_CA_FILE   the certificate of the directory's TLS CA
#                       (/var/lib/autoenroll-trust/ca.pem, written by the
#                       directory container)
#   CA_KERBEROS_KEYTAB  the keytab of HTTP/<host of CA_URL> (written by the
#                       KDC container): when readable, the CA also serves and
#                       publishes its Kerberos enrollment endpoint (HTTP
#                       Negotiate); unset or empty: passwords only
#   CA_KRB5_CONF        the realm's krb5.conf (with the keytab)
#   CA_NAME, CA_DNS_HOST_NAME, CA_URL, CA_HTTP_URL
set -eu
state=/var/lib/autoenroll-ca
secret_src=${CA_SERVICE_PASSWORD_FILE:-/run/secrets/ca-svc-password}
ca_file=${DIRECTORY_CA_FILE:-/var/lib/autoenroll-trust/ca.pem}

log() { printf 'ca-entrypoint: %s\n' "$*" >&2; }
[ -r "$secret_src" ] || { log "error: $secret_src is not readable (the ca-svc-password secret)"; exit 1; }

umask 077
mkdir -p "$state/secrets"
chmod 0700 "$state" "$state/secrets"
# The policy wants a private file of one line: a copy only this process reads.
head -n 1 "$secret_src" > "$state/secrets/ca-svc.secret.tmp"
mv "$state/secrets/ca-svc.secret.tmp" "$state/secrets/ca-svc.secret"
kerberos_lines=
if [ -n "${CA_KERBEROS_KEYTAB:-}" ]; then
    # The KDC writes the keytab on its first start; the CA starts after it.
    [ -s "$CA_KERBEROS_KEYTAB" ] || { log "error: $CA_KERBEROS_KEYTAB is missing (the KDC writes it)"; exit 1; }
    [ -r "${CA_KRB5_CONF:-}" ] || { log "error: CA_KRB5_CONF must name the realm's krb5.conf"; exit 1; }
    cp "$CA_KERBEROS_KEYTAB" "$state/secrets/http.keytab.tmp"
    mv "$state/secrets/http.keytab.tmp" "$state/secrets/http.keytab"
    kerberos_lines="kerberos_keytab = \"secrets/http.keytab\"
krb5_conf = \"$CA_KRB5_CONF\""
fi
cat > "$state/ca.toml.tmp" <<CONF
# Written by ca-entrypoint on every start from the container's environment.
name = "${CA_NAME:-corp-CA}"
dns_host_name = "${CA_DNS_HOST_NAME:-ca.corp.example}"
listen = "0.0.0.0:8443"
url = "${CA_URL:-https://ca:8443}"
http_listen = "0.0.0.0:8080"
http_url = "${CA_HTTP_URL:-http://ca:8080}"
state_dir = "state"
key_algorithm = "rsa3072"
$kerberos_lines

[directory]
url = "${DIRECTORY_URL:-ldap://directory:389}"
starttls = true
ca_file = "$ca_file"
timeout = "10s"
bind = "simple"
user = "${CA_SERVICE_ACCOUNT:-CN=ca-svc,CN=Users,DC=corp,DC=example}"
password_file = "secrets/ca-svc.secret"
CONF
mv "$state/ca.toml.tmp" "$state/ca.toml"
umask 022

# The directory may still be loading its forest.
for _ in $(seq 1 60); do
    if [ -r "$ca_file" ] && autoenroll ca init --config "$state/ca.toml"; then
        exec autoenroll ca serve --config "$state/ca.toml"
    fi
    sleep 2
done
log "error: ca init failed for two minutes"
exit 1
