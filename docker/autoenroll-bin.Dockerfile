# autoenroll from a binary built on this machine (Debian bookworm's glibc), on
# the base scripts/images.sh makes; the same image as autoenroll.Dockerfile
# without the build stage. scripts/images.sh stages its context: the binary
# and the two entrypoints, mode 0755.
ARG BASE=autoenroll-base:bookworm
FROM ${BASE}
LABEL autoenroll.image="lab"
COPY autoenroll /usr/local/bin/autoenroll
COPY ca-entrypoint.sh /usr/local/bin/ca-entrypoint
COPY host-entrypoint.sh /usr/local/bin/host-entrypoint
# The files come with mode 0755 (a chmod here would copy the binary into a
# second layer).
RUN /usr/local/bin/autoenroll --version >/dev/null
ENTRYPOINT ["/usr/local/bin/autoenroll"]
