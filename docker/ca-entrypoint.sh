#!/bin/sh
# The emulated enterprise CA corp-CA: writes its configuration from the
# environment, publishes itself to the directory (idempotent) and serves.
set -eu
state=/var/lib/autoenroll-ca
mkdir -p "$state/secrets"
chmod 0700 "$state" "$state/secrets"
printf '%s' "${CA_SERVICE_PASSWORD:-ca-svc-Lab-Passw0rd}" > "$state/secrets/ca-svc.secret"
chmod 0600 "$state/secrets/ca-svc.secret"
cat > "$state/ca.toml" <<CONF
name = "${CA_NAME:-corp-CA}"
dns_host_name = "${CA_DNS_HOST_NAME:-ca.corp.example}"
listen = "0.0.0.0:8443"
url = "${CA_URL:-https://ca:8443}"
http_listen = "0.0.0.0:8080"
http_url = "${CA_HTTP_URL:-http://ca:8080}"
state_dir = "state"

[directory]
url = "${DIRECTORY_URL:-ldap://directory:389}"
# The compose network is the lab's own; a real deployment uses ldaps:// or StartTLS.
allow_cleartext = true
bind = "simple"
user = "${CA_SERVICE_ACCOUNT:-CN=ca-svc,CN=Users,DC=corp,DC=example}"
password_file = "secrets/ca-svc.secret"
CONF
# The directory may still be loading its forest.
for _ in $(seq 1 60); do
    if autoenroll ca init --config "$state/ca.toml"; then
        exec autoenroll ca serve --config "$state/ca.toml"
    fi
    sleep 2
done
echo "ca init failed for two minutes" >&2
exit 1
