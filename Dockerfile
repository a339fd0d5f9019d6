# syntax=docker/dockerfile:1
# The ots-operator image: a static (musl) binary on distroless/static, running as uid 65532.
#   docker build -t ots-operator:dev .
# Lint (CI): hadolint Dockerfile

# Build on Alpine, whose native target is x86_64/aarch64-unknown-linux-musl: rustls/ring link
# statically, so the final image needs no libc at all. The image already has gcc and musl-dev.
FROM rust:1.95-alpine3.23 AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io download and the compiled dependencies between builds; the binary
# is copied out of the cached target dir because cache mounts are not part of the image.
# --locked builds exactly the dependency versions of Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin ots-operator \
    && install -D -m 0755 target/release/ots-operator /out/ots-operator

# distroless/static: CA certificates, /etc/passwd with `nonroot` (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian13:nonroot
LABEL org.opencontainers.image.title="ots-operator" \
      org.opencontainers.image.description="Kubernetes operator that hands out Secrets as Onetime Secret one-time links" \
      org.opencontainers.image.source="https://github.com/ots-operator/ots-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ots-operator /usr/local/bin/ots-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ots-operator"]
CMD ["run"]
