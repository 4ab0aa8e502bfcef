# autoenroll itself: the CA service and the client host of docker-compose.yml
# run this image. Build from the repository root:
#   docker build -f docker/autoenroll.Dockerfile -t autoenroll .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin autoenroll

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates ldap-utils \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/autoenroll /usr/local/bin/autoenroll
COPY docker/ca-entrypoint.sh /usr/local/bin/ca-entrypoint
COPY docker/host-entrypoint.sh /usr/local/bin/host-entrypoint
RUN chmod 0755 /usr/local/bin/ca-entrypoint /usr/local/bin/host-entrypoint
ENTRYPOINT ["/usr/local/bin/autoenroll"]
