# The ots-operator image: a static (musl) binary on distroless/static, running as uid 65532.
#   docker build -t ots-operator:dev .
# Lint (CI): hadolint Dockerfile
#
# No `# syntax=` line: nothing here needs more than the Dockerfile frontend built into BuildKit
# (Docker 20.10+, buildx, podman/buildah), and a syntax line makes every build fetch the frontend
# image from Docker Hub, so a build whose base images come from a mirror or a local store still fails.

# Build on Debian's slim Rust image for the musl target of the platform being built (TARGETARCH):
# rustls/ring link statically, so the final image needs no libc at all. The glibc host toolchain
# cross-builds to musl with its own self-contained CRT; the C parts (ring, mimalloc) must be compiled
# against musl's headers, hence musl-tools' musl-gcc. The official Rust images are published for
# amd64 and arm64, and each platform builds natively.
FROM rust:1.95-slim-bookworm AS build
ARG TARGETARCH
# cc-rs would look for x86_64-linux-musl-gcc; Debian's musl-tools names its compiler musl-gcc.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
WORKDIR /src
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "no musl target for TARGETARCH=${TARGETARCH}" >&2; exit 1 ;; \
    esac >/rust-target \
    && rustup target add "$(cat /rust-target)"
COPY . .
# Cache mounts keep the crates.io download and the compiled dependencies between builds; the binary
# is copied out of the cached target dir because cache mounts are not part of the image.
# --locked builds exactly the dependency versions of Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    target="$(cat /rust-target)" \
    && cargo build --release --locked --bin ots-operator --target "$target" \
    && install -D -m 0755 "target/$target/release/ots-operator" /out/ots-operator

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
