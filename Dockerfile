# The orca container image: the orca binary, the shared libraries it links,
# the CA bundle, passwd/group with the user orca (65532) and an empty /tmp.
# No shell, no package manager, nothing else.
#
#   SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
#   docker build --build-arg SOURCE_DATE_EPOCH -t orca:0.1.0 .
#   buildah bud --build-arg SOURCE_DATE_EPOCH --timestamp "$SOURCE_DATE_EPOCH" -t orca:0.1.0 .
#   make image        # offline, from target/release/orca (scripts/image.sh)
#
# Two ways to an image of the same layout and configuration:
#
# - `runtime` (the default target, the last stage): builds the binary in
#   `builder` from this repository with the pinned Rust image and
#   `--locked`, assembles the root in `rootfs`, copies it into scratch.
#
# - `prebuilt` (first in the file, `--target prebuilt`): the same runtime
#   configuration over a root that scripts/image.sh staged from a binary
#   cargo built on the host, in `rootfs/` of a build context of its own
#   (not this repository). It needs no base image, so it builds offline.
#   It is the first stage on purpose: a build stops at its target, and
#   buildah (1.28, Debian 12) then never resolves the later stages' bases
#   (`rust:...`), with or without --skip-unused-stages. Checked with
#   `buildah bud --pull-never --target prebuilt` on a machine without
#   those images: it builds.
#
# Reproducible: the base image is pinned by tag, cargo runs with --locked,
# and every file of the root carries SOURCE_DATE_EPOCH (default 0) as its
# time. BuildKit (>= 0.11) also takes the SOURCE_DATE_EPOCH build arg for
# the image's creation time; with buildah pass `--timestamp`, which sets
# both (scripts/image.sh does).
#
# Keep the configuration of `prebuilt` and `runtime` the same.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/orca-dev/orca

# --- prebuilt: runtime over a root staged outside -------------------------
FROM scratch AS prebuilt
ARG VERSION
ARG SOURCE
# The staged root, relative to the build context.
ARG ROOTFS=rootfs
COPY ${ROOTFS}/ /
LABEL org.opencontainers.image.title="orca" \
      org.opencontainers.image.description="Kubernetes operator for MySQL and MariaDB replication: discovery, refactoring, recovery" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/orca"]
CMD ["operator"]

# --- builder: the release binary ------------------------------------------
FROM ${RUST_IMAGE} AS builder
ENV CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never
WORKDIR /src
# .dockerignore keeps target/ and the rest of the local state out.
COPY . .
RUN cargo build -p orca --release --locked \
 && install -D -m 0755 target/release/orca /out/orca

# --- rootfs: the binary, what ldd names for it, CA bundle, users ----------
FROM builder AS rootfs
ARG SOURCE_DATE_EPOCH=0
# Each library at the path ldd names (the dynamic loader included),
# dereferenced: the root has no symlinks.
RUN set -eu; \
    r=/rootfs; \
    install -D -m 0755 /out/orca "$r/usr/local/bin/orca"; \
    for lib in $(ldd /out/orca | grep -o '/[^ ]*'); do \
      install -D -m 0755 "$(readlink -f "$lib")" "$r$lib"; \
    done; \
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'orca:x:65532:65532:orca:/nonexistent:/sbin/nologin' > "$r/etc/passwd"; \
    printf '%s\n' 'root:x:0:' 'orca:x:65532:' > "$r/etc/group"; \
    chmod 0644 "$r/etc/passwd" "$r/etc/group"; \
    install -d -m 1777 "$r/tmp"; \
    find "$r" -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +

# --- runtime: the image ----------------------------------------------------
FROM scratch AS runtime
ARG VERSION
ARG SOURCE
COPY --from=rootfs /rootfs/ /
LABEL org.opencontainers.image.title="orca" \
      org.opencontainers.image.description="Kubernetes operator for MySQL and MariaDB replication: discovery, refactoring, recovery" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/orca"]
CMD ["operator"]
