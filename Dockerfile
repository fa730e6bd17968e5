# uet worker image: `docker compose up --scale worker=N` runs N of these against one Temporal.
FROM python:3.11-slim

# git: activities drive the repositories uet works on with the git CLI.
# safe.directory: those repositories are bind-mounted from the host and owned by another uid.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /src
COPY . .
# [team]: the PostgreSQL driver for the telemetry database (UET_DATABASE_URL).
RUN pip install --no-cache-dir '.[team]'

# Non-root; pass --build-arg UET_UID=$(id -u) so the worker can write the bind-mounted repos.
ARG UET_UID=1000
ENV UET_HOME=/var/lib/uet \
    PYTHONUNBUFFERED=1
# UET_HOME exists and is owned by uet in the image, so a fresh named volume mounted there
# inherits that ownership.
RUN useradd --create-home --uid "${UET_UID}" uet \
    && mkdir -p "${UET_HOME}" \
    && chown uet:uet "${UET_HOME}"
USER uet
# Run from UET_HOME, not /src, so the installed package is what gets imported.
WORKDIR /var/lib/uet

CMD ["python", "-m", "worker"]
