#!/usr/bin/env bash
# Builds every image docker-compose.yml needs without pulling anything:
#
#   1. autoenroll-base:bookworm, a Debian bookworm minbase made by mmdebstrap
#      from Debian's package archive and loaded with `docker import` (kept when
#      it already exists with the same package list; --rebuild-base makes it
#      again). It holds the packages of every image (slapd, ldap-utils,
#      openssl, ca-certificates; MIT Kerberos: the KDC, kadmin.local, kinit,
#      GSS-API and slapd's SASL GSSAPI module), so that the directory, the
#      KDC, the CA and every host share its one layer;
#   2. autoenroll-directory, docker/directory.Dockerfile on that base;
#   3. autoenroll, docker/autoenroll-bin.Dockerfile: that base plus the
#      autoenroll binary built on this machine (Debian bookworm's glibc), by
#      default target/release/autoenroll, else target/debug/autoenroll
#      (stripped of its debug information in the image).
#
# Where images can be pulled, `docker compose build` instead builds the
# directory on debian:bookworm-slim and autoenroll from source in rust:1-bookworm
# (docker/autoenroll.Dockerfile); --from-source does that for autoenroll here.
#
# Usage: scripts/images.sh [--binary PATH] [--from-source] [--rebuild-base]
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=autoenroll-base:bookworm
# The base's packages; an existing base made with another list is made again.
BASE_PACKAGES=ca-certificates,ldap-utils,openssl,slapd,krb5-kdc,krb5-admin-server,krb5-user,libsasl2-modules-gssapi-mit
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
binary=
from_source=false
rebuild_base=false
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --from-source) from_source=true; shift ;;
        --rebuild-base) rebuild_base=true; shift ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "images.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine is reachable (docker info failed)"

build_base() {
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            log "installing mmdebstrap"
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >/dev/null \
                || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >/dev/null; } \
                || die "apt-get could not install mmdebstrap"
        else
            die "mmdebstrap is missing: sudo apt-get install mmdebstrap"
        fi
    fi
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the folder of this call
    trap "rm -rf '$tmp'" RETURN
    log "making $BASE with mmdebstrap from $MIRROR"
    # slapd/no_configuration: the package must create neither a database nor a
    # cn=config; the directory's entrypoint renders its own slapd.conf.
    # Documentation, manuals and translations are left out of the image.
    # shellcheck disable=SC2016 # the hooks expand $1 in mmdebstrap's shell
    mmdebstrap --quiet --variant=minbase \
        --include="$BASE_PACKAGES" \
        --essential-hook='echo "slapd slapd/no_configuration boolean true" | chroot "$1" debconf-set-selections' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/etc/krb5kdc/* "$1"/var/lib/krb5kdc/*' \
        bookworm "$tmp/base.tar" "$MIRROR" \
        || die "mmdebstrap failed"
    docker import --change 'CMD ["/bin/bash"]' \
        --change "LABEL autoenroll.base.packages=$BASE_PACKAGES" \
        --change 'ENV LANG=C.UTF-8' \
        --message "Debian bookworm minbase (mmdebstrap) for autoenroll" \
        "$tmp/base.tar" "$BASE" >/dev/null \
        || die "docker import failed"
}

started=$(date +%s)
base_packages=$(docker image inspect -f '{{index .Config.Labels "autoenroll.base.packages"}}' "$BASE" 2>/dev/null || true)
if $rebuild_base || [ "$base_packages" != "$BASE_PACKAGES" ]; then
    build_base
else
    log "$BASE exists (--rebuild-base makes it again)"
fi

log "building autoenroll-directory"
docker build --quiet --pull=false --build-arg BASE="$BASE" \
    -f docker/directory.Dockerfile -t autoenroll-directory . >/dev/null \
    || die "docker build of autoenroll-directory failed"

if $from_source; then
    log "building autoenroll from source (pulls rust:1-bookworm)"
    docker build --build-arg BASE="$BASE" -f docker/autoenroll.Dockerfile -t autoenroll . \
        || die "docker build of autoenroll failed"
else
    if [ -z "$binary" ]; then
        for candidate in target/release/autoenroll target/debug/autoenroll; do
            if [ -x "$candidate" ]; then binary=$candidate; break; fi
        done
        if [ -z "$binary" ]; then
            log "no target/*/autoenroll: cargo build --release --locked --bin autoenroll"
            cargo build --release --locked --bin autoenroll
            binary=target/release/autoenroll
        fi
    fi
    [ -x "$binary" ] || die "$binary is not an executable"
    # A test build (`cargo test` leaves one in target/debug) carries the
    # store's fault injection, which no image may ship.
    if grep -q AUTOENROLL_TEST_KILL_AT_STEP "$binary"; then
        die "$binary is a test build with fault injection: cargo build --locked --bin autoenroll first"
    fi
    # A context of three files: the binary (without debug information) and the
    # entrypoints, not the repository with its target/.
    ctx=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" EXIT
    if command -v objcopy >/dev/null 2>&1; then
        objcopy --strip-debug "$binary" "$ctx/autoenroll"
    else
        cp "$binary" "$ctx/autoenroll"
    fi
    cp docker/ca-entrypoint.sh docker/host-entrypoint.sh "$ctx/"
    chmod 0755 "$ctx/autoenroll" "$ctx/ca-entrypoint.sh" "$ctx/host-entrypoint.sh"
    log "building autoenroll with $binary"
    docker build --quiet --pull=false --build-arg BASE="$BASE" \
        -f docker/autoenroll-bin.Dockerfile -t autoenroll "$ctx" >/dev/null \
        || die "docker build of autoenroll failed"
fi

# The images these replaced (untagged now), and only those.
docker image prune -f --filter label=autoenroll.image=lab >/dev/null 2>&1 || true
log "done in $(($(date +%s) - started)) s"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^autoenroll(-directory|-base)?:' >&2 || true
