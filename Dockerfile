# syntax=docker/dockerfile:1
#
# Bifrost as an Azure Functions custom-handler container (Elastic Premium `containerImage`
# parameter, or `docker run` anywhere the Functions host runs).
#
#   docker build -t bifrost:$(git rev-parse --short HEAD) .
#   docker build --build-arg WORKSPACE_DIR=path/to/your/workspace -t ... .
#
# Stage 1 builds the release binary against Debian bookworm's Python 3.11 (a shared libpython,
# as pyo3 needs) and assembles the Functions app folder with `bifrost package --with-python`,
# which copies libpython and the standard library into the folder so the app needs no system
# Python. Stage 2 is Microsoft's Functions host image (bookworm, the same glibc as the build)
# with that folder as the app root. No secret is baked in: every setting comes from app settings
# (infra/) or `docker run -e` at run time.

ARG RUST_IMAGE=rust:1.95-bookworm
# The Node 22 flavour of the Functions v4 host image: bookworm-based and shipping the extension
# bundles host.json asks for (queue triggers) so start-up downloads nothing. A custom handler does
# not use Node. Pin a digest in your registry for reproducible deployments.
ARG FUNCTIONS_IMAGE=mcr.microsoft.com/azure-functions/node:4-node22

FROM ${RUST_IMAGE} AS build

# python3.11-dev: headers and the shared libpython3.11 that pyo3 links against (Debian builds it
# with --enable-shared). Versions follow bookworm's security updates, hence not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-dev libpython3.11 \
 && rm -rf /var/lib/apt/lists/*

ENV PYO3_PYTHON=/usr/bin/python3.11 \
    CARGO_TERM_COLOR=never

WORKDIR /src
COPY . .

# The folder of workflow files shipped in the image (BIFROST_WORKSPACE_LOCATION=workspace).
ARG WORKSPACE_DIR=examples/workspace

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin bifrost \
 && ./target/release/bifrost package /out --source . --workspace "${WORKSPACE_DIR}" --with-python \
 && test -x /out/bifrost && test -f /out/host.json

FROM ${FUNCTIONS_IMAGE} AS runtime

# The host listens on 8080 (a non-root user cannot bind 80); the platform is told so with the
# WEBSITES_PORT app setting (infra/modules/functionApp.bicep). The app folder is owned by root and
# read-only for the service user; only its scratch folders are writable.
ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    FUNCTIONS_WORKER_RUNTIME=custom \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    ASPNETCORE_URLS=http://+:8080 \
    BIFROST_DATA_DIR=/tmp/bifrost-data \
    HOME=/home

RUN groupadd --system --gid 10001 bifrost \
 && useradd --system --uid 10001 --gid bifrost --home-dir /home --no-create-home --shell /usr/sbin/nologin bifrost \
 && mkdir -p /home/site/wwwroot /home/LogFiles /home/data /tmp/bifrost-data \
 && chown -R bifrost:bifrost /home/LogFiles /home/data /tmp/bifrost-data

COPY --from=build --chown=root:root /out/ /home/site/wwwroot/

# Numeric, so the platform can tell it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "4", "http://127.0.0.1:8080/api/health"]

# Start the host directly: the image's start script installs CA certificates as root first.
CMD ["/azure-functions-host/Microsoft.Azure.WebJobs.Script.WebHost"]
