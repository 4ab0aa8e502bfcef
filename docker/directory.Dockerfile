# The emulated AD forest corp.example: OpenLDAP with the AD / AD CS schema, the
# rootDSE emulation and the sample forest of ldif/, configured by the same
# slapd.conf template as the Rust lab. Build from the repository root:
#   docker build -f docker/directory.Dockerfile -t autoenroll-directory .
FROM debian:bookworm-slim

# no_configuration: the package must not create its own database and cn=config.
RUN echo "slapd slapd/no_configuration boolean true" | debconf-set-selections \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        slapd ldap-utils \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/ldap /run/slapd /etc/ldap/autoenroll \
    && chown openldap:openldap /var/lib/ldap /run/slapd

COPY ldif/ /usr/share/autoenroll/ldif/
COPY docker/directory-entrypoint.sh /usr/local/bin/directory-entrypoint
RUN chmod 0755 /usr/local/bin/directory-entrypoint \
    && chmod -R a+rX /usr/share/autoenroll

# The database; the forest is loaded into it on first start.
VOLUME /var/lib/ldap
EXPOSE 389

HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ldapsearch -x -LLL -H ldap://127.0.0.1/ -b "" -s base configurationNamingContext \
        | grep -q '^configurationNamingContext:' || exit 1

ENTRYPOINT ["/usr/local/bin/directory-entrypoint"]
