# autoenroll itself, built from source: the CA service and the client hosts of
# docker-compose.yml run this image. Build from the repository root (it pulls
# rust:1-bookworm and debian:bookworm-slim):
#   docker build -f docker/autoenroll.Dockerfile -t autoenroll .
# Without a registry, scripts/images.sh builds the same image from the binary
# built on this machine (docker/autoenroll-bin.Dockerfile).
ARG BASE=debian:bookworm-slim
FROM rust:1-bookworm AS build
WORKDIR /src
# The GSS-API bindings need MIT's headers, and clang for bindgen.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libkrb5-dev clang libclang-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin autoenroll

FROM ${BASE}
LABEL autoenroll.image="lab"
RUN if ! command -v ldapsearch >/dev/null || ! command -v openssl >/dev/null \
        || [ ! -d /etc/ssl/certs ] || ! command -v kinit >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            ca-certificates ldap-utils openssl krb5-user libgssapi-krb5-2 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /src/target/release/autoenroll /usr/local/bin/autoenroll
COPY docker/ca-entrypoint.sh /usr/local/bin/ca-entrypoint
COPY docker/host-entrypoint.sh /usr/local/bin/host-entrypoint
RUN chmod 0755 /usr/local/bin/ca-entrypoint /usr/local/bin/host-entrypoint
ENTRYPOINT ["/usr/local/bin/autoenroll"]
