# uet image: the workers (`docker compose up --scale worker=N`), the CLI (`docker compose run
# --rm uet uet …`) and the compose git remote run it. Nothing in it is shared at run time.
FROM python:3.11-slim

# git: activities drive each worker's mirror of the run's repository with the git CLI, and the
# compose git remote is `git daemon`. openssh-client: for ssh:// and user@host:path URLs.
# safe.directory: a volume may hold repositories an earlier UET_UID created.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /src
COPY . .
# [team]: the PostgreSQL driver (UET_DATABASE_URL). pytest: the demo's gates (examples/demo) run
# `python3 -m pytest`; a worker offers the toolchains its image has, so add your own here or in
# an image FROM this one. A build/ left by a local `pip install` would leak stale modules into
# the wheel: removed first.
RUN rm -rf build ./*.egg-info \
    && pip install --no-cache-dir '.[team]' 'pytest>=8.3'

# Any uid works (compose runs it as ${UET_UID:-1000}:${UET_GID:-1000}): HOME and USER are set
# here, since an unknown uid has no passwd entry to take them from (Python's Path.home() and
# getpass read them; git its config from HOME), and the directories it writes are
# world-writable with the sticky bit. The build args give that uid a passwd entry, which ssh
# insists on: build with the uid you run as (compose passes the same variables).
ARG UET_UID=1000
ARG UET_GID=1000
ENV HOME=/home/uet \
    USER=uet \
    UET_HOME=/var/lib/uet \
    PYTHONUNBUFFERED=1
RUN groupadd --non-unique --gid "${UET_GID}" uet \
    && useradd --non-unique --uid "${UET_UID}" --gid "${UET_GID}" --no-create-home \
        --home-dir /home/uet uet \
    && mkdir -p /home/uet "${UET_HOME}" /srv/git \
    && chmod 1777 /home/uet "${UET_HOME}" /srv/git
USER uet
# Run from UET_HOME, not /src, so the installed package is what gets imported.
WORKDIR /var/lib/uet

CMD ["python", "-m", "worker"]
