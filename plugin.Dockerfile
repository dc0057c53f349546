# The CI plugin image: Drone, Woodpecker, Harness and Vela run it with no arguments and the step's
# settings in the environment (PLUGIN_*, PARAMETER_*), and s3cache recognizes the dialect
# (docs/drone-woodpecker.md, "CI plugins").
#
#   docker build -f plugin.Dockerfile -t ghcr.io/s3cache/plugin:v0.1.0 .
#   docker build -f plugin.Dockerfile --build-arg DIALECT=drone-s3-cache -t ghcr.io/s3cache/drone-s3-cache:v0.1.0 .
#
# DIALECT (drone-cache, harness, drone-s3-cache, woodpecker-cache, vela) pins the dialect for
# settings that could be read either way; empty, it is recognized from the settings. The guest
# component is committed (host/embedded/s3cache-guest.wasm), so this build needs only stable Rust.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p s3cache

FROM debian:bookworm-slim
ARG DIALECT=
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/s3cache /usr/local/bin/s3cache
# The sandbox compiled once at build time, so a step does not spend seconds compiling it.
ENV S3CACHE_CACHE_DIR=/opt/s3cache
RUN /usr/local/bin/s3cache --store file:///tmp/warm key --template warm && rm -rf /tmp/warm && chmod -R a+rX /opt/s3cache
ENV S3CACHE_PLUGIN=${DIALECT}
ENTRYPOINT ["/usr/local/bin/s3cache"]
