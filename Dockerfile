# Hookline: one binary, any role (`ingest`, `dispatcher`, `scheduler`, `serve`).
# syntax=docker/dockerfile:1
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
RUN cargo build --release --locked -p hookline \
    && install -D target/release/hookline /out/hookline

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home hookline
COPY --from=build /out/hookline /usr/local/bin/hookline
USER 10001
EXPOSE 8071 9090
ENTRYPOINT ["/usr/local/bin/hookline"]
CMD ["serve"]
