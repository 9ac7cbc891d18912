# Dockerfile: the segstream binary on Debian 12. The build stage installs
# every package of scripts/install-deps.sh and builds with
# scripts/build-pgo.sh (the profile-guided build: the plain build's output,
# 5-13 % faster on the hot path; scripts/test.sh checks both agree); the
# runtime stage holds the binary and the packages of the shared libraries
# it links (found with ldd and dpkg -S).
#   docker build -t segstream:local .      (docker-compose.yml does this)
FROM debian:bookworm AS build
WORKDIR /src
# First the package list alone, so that source edits keep this layer cached.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN PGO_TARGETS=segstream ./scripts/build-pgo.sh build \
 && install -D -m 0755 build/cmd/segstream /out/segstream \
 && ! ldd /out/segstream | grep 'not found' \
 && for f in $(ldd /out/segstream | awk '/=> \//{print $3}'); do \
      dpkg -S "$f" 2>/dev/null || dpkg -S "$(realpath "$f")" \
        || { echo "no Debian package owns $f" >&2; exit 1; }; \
    done > /out/owners \
 && cut -d: -f1 /out/owners | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# curl: the compose file's health check of /healthz
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends curl $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && useradd --system --no-create-home --shell /usr/sbin/nologin segstream
COPY --from=build /out/segstream /usr/local/bin/segstream
USER segstream
# /metrics and /healthz (http.listen must be 0.0.0.0:9464 in a container)
EXPOSE 9464
CMD ["segstream", "run"]
