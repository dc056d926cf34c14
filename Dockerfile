# proxy-injector image: one statically linked binary and nothing else, run as non-root.
# The binary is built before, outside the image build (scripts/static-build.sh, from the files
# git tracks), so building the image needs no base image and no registry:
#   make image   (static build, then podman build -t proxy-injector:0.1.0 .)
# .dockerignore sends only that binary as the build context.
FROM scratch
COPY target/image/proxy-injector /proxy-injector
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/proxy-injector"]
CMD ["serve", "--help"]
