"""Pushing uet's branches to a forge's git remote, safely.

- Only uet's own branches: every destination is ``refs/heads/uet/…``; any other name is
  refused before git runs. Those are force-pushed (uet rewrites them; nobody else owns them).
- The user's repository is not changed: the push names the URL itself (no remote is added,
  no remote-tracking ref is written) and pushes shas, so no local ref moves either.
- The token reaches git only through the environment of that one ``git push``:
  ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` set an
  ``http.<url>.extraHeader`` with HTTP Basic credentials. Not on the command line (any user
  on the host can read a process's argv; only its owner and root can read its environment),
  not in the URL (git prints URLs and may store them), not in a config file, and not handed
  to a credential helper (the helper list is emptied for the process, so none can store it).
  Every message that leaves here has the token (and its base64 form) masked.
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import urlsplit, urlunsplit

from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, redact_url, resolve_commit
from activities.lib.redact import redact, secret_values

log = logging.getLogger("uet.forges")

#: The HTTP Basic username each forge takes with a token as the password:
#: - GitHub: ``x-access-token`` ("Authenticating as a GitHub App installation": use the
#:   installation token as the HTTP password, ``https://x-access-token:TOKEN@github.com/…``;
#:   personal access tokens are accepted the same way, and actions/checkout sends exactly
#:   this header).
#: - GitLab: ``oauth2`` (personal/project/group access tokens take "any non-blank value as a
#:   username"; OAuth tokens needed the magic ``oauth2`` until GitLab 17.x, gitlab#349461, so
#:   ``oauth2`` suits every kind of GitLab token).
#: - Gitea/Forgejo: ``oauth2`` (services/auth/basic.go: a non-empty password other than
#:   ``x-oauth-basic`` is looked up as the token and the username is ignored; Forgejo's and
#:   Codeberg's guides use ``oauth2``).
BASIC_USERNAMES: dict[str, str] = {
    "github": "x-access-token",
    "gitlab": "oauth2",
    "gitea": "oauth2",
}

UET_BRANCHES = "refs/heads/uet/"

#: A branch name git would refuse (git-check-ref-format's rules), checked before git runs.
_BAD_REF = re.compile(r"(^|/)\.|\.\.|@\{|[\x00-\x20\x7f~^:?*\[\\]|//|\.lock(/|$)|[/.]$")

#: What git prints when the forge refused the credentials (or there were none to give).
_AUTH_FAILED = (
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "authentication failed",
    "invalid username or password",
    "http basic: access denied",
    "returned error: 401",
    "returned error: 403",
    "permission denied (publickey",
)
#: What git prints when the forge could not be reached, or had a moment (a retry may help).
_UNREACHABLE = (
    "could not resolve host",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "network is unreachable",
    "no route to host",
    "empty reply from server",
    "recv failure",
    "send failure",
    "the remote end hung up unexpectedly",
    "early eof",
    "ssl_connect",
    "gnutls",
    "ssh: connect to host",
    "returned error: 429",
    "returned error: 500",
    "returned error: 502",
    "returned error: 503",
    "returned error: 504",
)


def uet_branch_ref(name: str) -> str:
    """``name`` (``uet/…`` or ``refs/heads/uet/…``) as a full ref; anything else is refused
    for good: uet never pushes a branch it does not own."""
    ref = name if name.startswith("refs/") else f"refs/heads/{name}"
    rest = ref.removeprefix(UET_BRANCHES)
    if rest == ref or not rest or _BAD_REF.search(rest):
        raise ApplicationError(
            f"refusing to push to branch {name!r}: uet only pushes its own branches (uet/…)",
            type="ForgePushRefused",
            non_retryable=True,
        )
    return ref


def basic_credentials(token: str, kind: str) -> str:
    """``base64(USERNAME:TOKEN)`` with the username ``kind``'s forge expects."""
    try:
        username = BASIC_USERNAMES[kind]
    except KeyError:
        raise ApplicationError(
            f"unknown forge kind {kind!r} (one of {', '.join(BASIC_USERNAMES)})",
            type="ForgePushRefused",
            non_retryable=True,
        ) from None
    return base64.b64encode(f"{username}:{token}".encode()).decode("ascii")


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def _header_key(url: str) -> str:
    """The most specific ``http.<url>.extraHeader`` key for ``url``: it wins over any
    ``http.<prefix>.extraHeader`` in the user's config (git applies the longest match), so
    a header the repository's own config carries (actions/checkout writes one) is not sent
    beside ours. Query and fragment are no part of a URL match."""
    parts = urlsplit(url)
    return f"http.{urlunsplit(parts._replace(query='', fragment=''))}.extraHeader"


def push_env(repo: Git, url: str, token: str | None, kind: str) -> dict[str, str]:
    """The environment additions for one ``git push`` to ``url``.

    ``run_git`` starts from the worker's environment without any inherited ``GIT_*``
    (``clean_env``), then adds these, so they are the only ``GIT_CONFIG_*`` git sees: the
    count continues after any the Git context itself set.
    """
    if token is None or not _is_http(url):
        # ssh (and git://, file://): git's own keys and config; a token means nothing there.
        return {}
    base = int(repo.env.get("GIT_CONFIG_COUNT", "0") or 0)
    key = _header_key(url)
    settings = [
        # An empty value resets the list: no helper can answer, or store, for this push.
        ("credential.helper", ""),
        # Reset, then ours: the only Authorization header git sends.
        (key, ""),
        (key, f"Authorization: Basic {basic_credentials(token, kind)}"),
    ]
    env = {"GIT_CONFIG_COUNT": str(base + len(settings))}
    for i, (name, value) in enumerate(settings, start=base):
        env[f"GIT_CONFIG_KEY_{i}"] = name
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    # No askpass program either (GIT_ASKPASS="" also stops the SSH_ASKPASS fallback); with
    # GIT_TERMINAL_PROMPT=0 (clean_env) a refused token fails the push instead of asking.
    env["GIT_ASKPASS"] = ""
    return env


async def push_branches(
    repo: Git,
    url: str,
    refspecs: list[tuple[str, str]],
    *,
    token: str | None,
    kind: str,
    token_env: str | None = None,
) -> dict[str, str]:
    """Force-push each ``(local ref or sha, uet branch)`` of ``refspecs`` to ``url`` in one
    atomic push; what each remote ref was set to (``refs/heads/uet/…`` → sha).

    ``token`` (read from ``token_env``, which messages name) authenticates an http(s) push;
    ssh URLs use git's own keys. Failures are one line: a refused token or an unknown branch
    for good, a forge that could not be reached retryable.
    """
    secrets = [s for s in (token, token and basic_credentials(token, kind)) if s]
    where = redact(redact_url(url), secrets)
    dests: dict[str, str] = {}
    for src, dest in refspecs:
        ref = uet_branch_ref(dest)
        if ref in dests:
            raise ApplicationError(
                f"refusing to push twice to {ref} ({dests[ref]!r}, {src!r})",
                type="ForgePushRefused",
                non_retryable=True,
            )
        dests[ref] = src
    if not dests:
        return {}
    env = push_env(repo, url, token, kind)  # validates kind before anything runs
    shas: dict[str, str] = {}
    for ref, src in dests.items():
        sha = await resolve_commit(repo, src)
        if sha is None:
            raise ApplicationError(
                f"cannot push {src!r} to {ref}: no such commit in {repo.git_dir}",
                type="ForgePushFailed",
                non_retryable=True,
            )
        shas[ref] = sha
    pushed = await repo.run(
        "push", "--atomic", "--porcelain", "--no-verify", "--", url,
        *[f"+{sha}:{ref}" for ref, sha in shas.items()],
        check=False, env=env,
    )  # fmt: skip
    if pushed.returncode != 0:
        raise _push_failed(
            pushed.stdout.decode("utf-8", "replace"),
            pushed.stderr.decode("utf-8", "replace"),
            where=where,
            secrets=secrets,
            token=token,
            token_env=token_env,
            ssh=not _is_http(url),
        )
    log.info("pushed %s to %s", ", ".join(f"{r}={s[:12]}" for r, s in shas.items()), where)
    return shas


def _push_failed(
    stdout: str,
    stderr: str,
    *,
    where: str,
    secrets: list[str],
    token: str | None,
    token_env: str | None,
    ssh: bool,
) -> ApplicationError:
    said = stderr.lower()
    named = f"${token_env}" if token_env else "the forge token"
    if any(marker in said for marker in _AUTH_FAILED):
        if ssh:
            message = f"the forge refused uet's ssh key for {where}; check it has write access"
        elif token is None:
            message = (
                f"{where} requires authentication (HTTP 401/403) and no token was given; "
                f"set {named}"
            )
        else:
            message = (
                f"the forge refused the token in {named} for {where} (HTTP 401/403); "
                "check it has write access"
            )
        return ApplicationError(
            redact(message, [*secrets, *secret_values()]),
            type="ForgeAuthFailed",
            non_retryable=True,
        )
    retry = any(marker in said for marker in _UNREACHABLE)
    # A ref the forge rejected says why on its porcelain line ("!\tsrc:dst\t[remote
    # rejected] (protected branch)"), a clearer line than git's closing "failed to push".
    rejected = [line.split("\t")[-1] for line in stdout.splitlines() if line.startswith("!\t")]
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not line.startswith("error: failed to push some refs")
    ]
    last = rejected[-1] if rejected else (lines[-1] if lines else "no output")
    return ApplicationError(
        redact(f"pushing to {where} failed: {last}", [*secrets, *secret_values()]),
        type="ForgeUnreachable" if retry else "ForgePushFailed",
        non_retryable=not retry,
    )


__all__ = ["BASIC_USERNAMES", "push_branches", "push_env", "uet_branch_ref"]
