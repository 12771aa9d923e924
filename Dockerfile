# The Tributary worker. Multi-stage: build with the Rust toolchain (cmake and a C++ compiler
# for librdkafka), run on debian-slim as a non-root user.
#
#   docker build -t tributary .
#   docker run --rm -p 8083:8083 tributary run --config /etc/tributary/worker.yaml

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make pkg-config perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tributary \
    && cp target/release/tributary /usr/local/bin/tributary

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tributary --shell /usr/sbin/nologin tributary \
    && mkdir -p /var/lib/tributary /etc/tributary \
    && chown tributary:tributary /var/lib/tributary
COPY --from=build /usr/local/bin/tributary /usr/local/bin/tributary
COPY deploy/tributary/worker.yaml /etc/tributary/worker.yaml
USER tributary
WORKDIR /var/lib/tributary
VOLUME ["/var/lib/tributary"]
EXPOSE 8083
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS http://localhost:8083/health || exit 1
ENTRYPOINT ["tributary"]
CMD ["run", "--config", "/etc/tributary/worker.yaml"]
