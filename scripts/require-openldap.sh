#!/usr/bin/env bash
# Makes sure the lab's servers and the tools the tests use are installed
# (Debian/Ubuntu): OpenLDAP (slapd, ldap-utils), openssl, MIT Kerberos (KDC,
# kadmin.local, kinit, slapd's GSSAPI module), Samba (the Samba AD DC lab),
# dnsmasq, faketime, mmdebstrap, scep (micromdm's SCEP server and client), certmonger (its scep-submit
# helper, a foreign SCEP client of the CA's NDES role), SoftHSM2 (keys on a PKCS#11 token), NSS's
# tools and ca-certificates (the export and system trust tests), and what building needs (MIT's headers, clang
# and pkg-config for the GSS-API bindings). As root it installs what is
# missing; otherwise it uses sudo when available, or prints the command. Debian's packages start their own slapd, KDC and Samba;
# those are stopped (the lab runs private ones).
set -euo pipefail
packages=(slapd ldap-utils openssl krb5-kdc krb5-admin-server krb5-user
  libsasl2-modules-gssapi-mit dnsmasq-base faketime mmdebstrap
  samba samba-ad-dc samba-ad-provision ldb-tools winbind iproute2
  libkrb5-dev clang libclang-dev pkg-config curl scep certmonger
  softhsm2 libnss3-tools ca-certificates dpkg-dev binutils procps python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
install=(apt-get install -y --no-install-recommends "${missing[@]}")
stop() {
  for s in slapd krb5-kdc krb5-admin-server samba-ad-dc smbd nmbd winbind certmonger; do
    "$@" systemctl stop "$s" >/dev/null 2>&1 || true
  done
}
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  "${install[@]}"
  stop
elif command -v sudo >/dev/null 2>&1; then
  sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  sudo env DEBIAN_FRONTEND=noninteractive "${install[@]}"
  stop sudo
else
  echo "Packages are missing. As root, run:" >&2
  echo "  DEBIAN_FRONTEND=noninteractive ${install[*]}" >&2
  exit 1
fi
