# syntax=docker/dockerfile:1
# The publishable sysfile frontend image: a static `sysfile` binary in a FROM-scratch image.
#
# This needs a registry (rust:1-bookworm and the dockerfile:1 syntax image), so it CANNOT be built
# on the project's offline development and CI machines; that is expected. There, scripts/frontend-image
# makes the same image (same binary build, same labels, same entrypoint) from a locally built binary.
# Keep the two in step.
#
# The caps label must equal the output of `sysfile frontend-caps` for the binary inside. It is a
# build argument so that a release job can pass exactly that output:
#   cargo build --release && CAPS=$(target/release/sysfile frontend-caps)
#   docker build -f frontend.Dockerfile --build-arg CAPS="$CAPS" -t REGISTRY/sysfile:VERSION .
# The final stage re-checks it against the binary it copies and fails the build on a mismatch.

FROM rust:1-bookworm AS build
ARG TARGET=x86_64-unknown-linux-gnu
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=sysfile-target \
    RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target "$TARGET" --bin sysfile \
 && cp "target/$TARGET/release/sysfile" /sysfile \
 && ! ldd /sysfile 2>/dev/null | grep -q '=>'

FROM build AS check-caps
ARG CAPS
RUN test -n "$CAPS" || { echo 'pass --build-arg CAPS="$(sysfile frontend-caps)"' >&2; exit 1; } \
 && test "$(/sysfile frontend-caps)" = "$CAPS" \
 || { echo "CAPS does not match '/sysfile frontend-caps': $(/sysfile frontend-caps)" >&2; exit 1; }

FROM scratch
ARG CAPS
# Depend on the caps check so BuildKit runs it.
COPY --from=check-caps /sysfile /sysfile
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="${CAPS}"
ENTRYPOINT ["/sysfile", "frontend"]
