#!/bin/sh
# A domain-joined client host: the machine context of ws01 runs the worker.
set -eu
mkdir -p /etc/autoenroll /var/lib/autoenroll
chmod 0700 /etc/autoenroll
printf '%s' "${HOST_PASSWORD:-ws01-Lab-Passw0rd}" > /etc/autoenroll/host.secret
chmod 0600 /etc/autoenroll/host.secret
cat > /etc/autoenroll/machine.toml <<CONF
context = "machine"
trust_anchors_dir = "/usr/local/share/ca-certificates"
metrics_file = "/var/lib/autoenroll/autoenroll.prom"

[directory]
url = "${DIRECTORY_URL:-ldap://directory:389}"
# The compose network is the lab's own; a real deployment uses ldaps:// or StartTLS.
allow_cleartext = true
bind = "simple"
user = "${HOST_ACCOUNT:-CN=ws01,CN=Computers,DC=corp,DC=example}"
password_file = "host.secret"

[schedule]
directory_check = "1m"
CONF
exec autoenroll daemon --policy /etc/autoenroll/machine.toml
