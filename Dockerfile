# The image behind action.yml (the Docker container action: restore in `main`, save in `post`).
#
#   docker build -t ghcr.io/s3cache/s3cache:v0.1.0 .
#   docker push ghcr.io/s3cache/s3cache:v0.1.0
#
# The release workflow builds and pushes it for each tag; action.yml pins that tag, so a job pulls a
# prebuilt image instead of compiling wasmtime (~20 minutes). The guest component is committed
# (host/embedded/s3cache-guest.wasm), so this build needs only the stable Rust toolchain.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p s3cache

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/s3cache /usr/local/bin/s3cache
COPY action/post-entrypoint.sh /usr/local/bin/s3cache-post
# The compiled guest is cached here between the main and post steps of one job.
ENV S3CACHE_CACHE_DIR=/github/home/.cache/s3cache
# `s3cache serve --listen 0.0.0.0:8080` (docs/serve.md) listens here.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/s3cache"]
