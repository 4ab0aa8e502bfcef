# The emulated AD forest corp.example: OpenLDAP with the AD / AD CS schema, the
# rootDSE emulation, the sample forest of ldif/ and a pool of 40 computer
# accounts (host01..host40, docker/pool-ldif.sh), configured by the same
# slapd.conf template as the Rust lab. Build from the repository root:
#   docker build -f docker/directory.Dockerfile -t autoenroll-directory .
# scripts/images.sh builds it without pulling, on its own Debian base
# (BASE=autoenroll-base:bookworm, which already holds the packages).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
LABEL autoenroll.image="lab"

# no_configuration: the package must not create its own database and cn=config.
RUN if ! command -v slapd >/dev/null || ! command -v ldapsearch >/dev/null \
        || ! command -v openssl >/dev/null || ! command -v krb5kdc >/dev/null \
        || ! ls /usr/lib/*/sasl2/libgssapiv2.so >/dev/null 2>&1; then \
        echo "slapd slapd/no_configuration boolean true" | debconf-set-selections \
        && apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            slapd ldap-utils openssl krb5-kdc krb5-admin-server krb5-user \
            libsasl2-modules-gssapi-mit \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && mkdir -p /var/lib/ldap /run/slapd /etc/ldap/autoenroll /etc/ldap/tls \
        /usr/share/autoenroll/pool \
    && chown openldap:openldap /var/lib/ldap /run/slapd

COPY ldif/ /usr/share/autoenroll/ldif/
COPY docker/pool-ldif.sh /usr/local/lib/autoenroll/pool-ldif.sh
COPY docker/directory-entrypoint.sh /usr/local/bin/directory-entrypoint
COPY docker/directory-healthcheck.sh /usr/local/bin/directory-healthcheck
COPY docker/kdc-entrypoint.sh /usr/local/bin/kdc-entrypoint
RUN sh /usr/local/lib/autoenroll/pool-ldif.sh 40 > /usr/share/autoenroll/pool/pool.ldif \
    && chmod 0755 /usr/local/bin/directory-entrypoint /usr/local/bin/directory-healthcheck /usr/local/bin/kdc-entrypoint \
    && chmod -R a+rX /usr/share/autoenroll

# The database (the forest is loaded into it on first start) and the TLS
# certificate and key (made there on first start with DIRECTORY_TLS_GENERATE).
VOLUME ["/var/lib/ldap", "/etc/ldap/tls"]
EXPOSE 389

HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/directory-healthcheck"]

ENTRYPOINT ["/usr/local/bin/directory-entrypoint"]
