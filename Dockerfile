# proxy-injector image: the static-ish binary on a distroless base, non-root.
#   make image   (docker build -t proxy-injector:0.1.0 .)
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --locked --bin proxy-injector \
 && strip target/release/proxy-injector

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/proxy-injector /usr/local/bin/proxy-injector
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/proxy-injector"]
CMD ["serve", "--help"]
