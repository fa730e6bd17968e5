"""Running git safely on behalf of uet.

Every call pins ``GIT_DIR``/``GIT_WORK_TREE``/``GIT_INDEX_FILE`` explicitly (a worktree's
``.git`` pointer could have been rewritten by a tool), drops inherited ``GIT_*`` variables,
and neutralises config that executes commands or rewrites objects behind our back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.exceptions import ApplicationError

from activities.lib import child_watcher
from activities.lib.stale_locks import break_stale_ref_locks

if TYPE_CHECKING:  # libgit2 is imported where it is used: the CLI's start does without it
    import pygit2

SAFE_CONFIG: tuple[str, ...] = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.quotePath=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "tag.gpgSign=false",
    # uet's own index files stay whole, as libgit2 reads them (Git.write_tree).
    "-c",
    "core.splitIndex=false",
)

#: How uet makes a checkout's ``.git``: no template (no hooks, no exclude file), branch uet.
INIT = ("--quiet", "--template=", "--initial-branch=uet")

#: Error types a git step raises that no retry heals (a patch that does not apply never will):
#: the git steps' retry policy (workflows/steps.py GIT_RETRY) and the ready patch's own step.
FINAL_GIT_ERRORS = ("PatchDoesNotApply",)

#: A full object id (SHA-1 or SHA-256).
SHA_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

#: Any mention of core.sharedRepository in a repository's config file.
_SHARED = re.compile(rb"sharedrepository", re.IGNORECASE)

#: Fixed identity so that a re-executed commit gets the same sha.
UET_IDENT = ("uet", "uet@localhost")


class _Elsewhere(Exception):
    """A ref is not where a compare-and-swap expects it."""


class GitError(Exception):
    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args[:3])} failed ({returncode}): {stderr.strip()[:500]}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()


#: What every process uet starts runs with: git's messages as uet parses them, never a
#: credential prompt, no optional locks taken in a repository it only reads.
GIT_SAFE = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without inherited GIT_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_SAFE)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Git:
    """A git command context: which repository, which work tree, which index."""

    git_dir: Path
    work_tree: Path | None = None
    index_file: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: The URL a worker's mirror stands for (activities/lib/remote_repo.py): every ref uet
    #: moves goes there first, with a lease; the mirror is only a cache of it.
    remote: str | None = None

    def with_(self, **changes: object) -> Git:
        return Git(**{**self.__dict__, **changes})  # type: ignore[arg-type]

    async def run(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        pinned = {"GIT_DIR": str(self.git_dir)}
        if self.work_tree is not None:
            pinned["GIT_WORK_TREE"] = str(self.work_tree)
        if self.index_file is not None:
            pinned["GIT_INDEX_FILE"] = str(self.index_file)
        return await run_git(
            *args,
            cwd=self.work_tree or self.git_dir,
            input=input,
            check=check,
            env={**self.env, **pinned, **(env or {})},
        )

    async def out(self, *args: str, **kwargs: object) -> str:
        return (await self.run(*args, **kwargs)).text  # type: ignore[arg-type]

    async def rev_parse(self, rev: str) -> str | None:
        result = await self.run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", rev, check=False
        )
        return result.text if result.returncode == 0 else None

    async def commit_tree(self, tree: str, parents: list[str], message: str, timestamp: int) -> str:
        """A commit whose sha depends only on its arguments (fixed identity, given date)."""
        date = f"{timestamp} +0000"
        written = self._write_commit(tree, parents, message, date)
        if written is not None:
            return written
        parent_args = [arg for p in parents for arg in ("-p", p)]
        return await self.out(
            *("-c", "i18n.commitEncoding=UTF-8"),  # as written above: no encoding header
            *("commit-tree", tree, *parent_args, "-F", "-"),
            input=message.encode(),
            env=ident_env(date),
        )

    def _write_commit(self, tree: str, parents: list[str], message: str, date: str) -> str | None:
        """The commit ``git commit-tree`` would write (the same bytes, so the same id),
        written as a loose object without a git process: a commit is a few headers and the
        message, and a git process costs milliseconds on every workstream's path. None where
        git's own writer should do it: a shared repository (git sets group permissions), an
        object directory given elsewhere, anything unexpected on the way."""
        objects = self.git_dir / "objects"
        if not self.writes_own_objects() or not self._loose(tree).is_file():
            return None  # a packed tree, say: git checks it exists (the parents are the run's)
        name, email = UET_IDENT
        ident = f"{name} <{email}> {date}"
        # commit-tree drops a parent given twice ("duplicate parent ignored").
        headers = [f"tree {tree}", *(f"parent {p}" for p in dict.fromkeys(parents))]
        headers += [f"author {ident}", f"committer {ident}"]
        body = ("\n".join(headers) + "\n\n" + message).encode()
        try:
            return write_loose(objects, b"commit", body, len(tree))
        except OSError:
            return None

    def writes_own_objects(self) -> bool:
        """Whether uet may write objects into this repository from its own process (its
        commit writer, libgit2): not where git's own writer must, a shared repository (``git
        init --shared``, ``core.sharedRepository``: git gives new objects and directories the
        group's permissions, libgit2 does not) or an object directory given elsewhere."""
        if "GIT_OBJECT_DIRECTORY" in self.env:
            return False
        try:
            return not (
                (self.git_dir / "objects").stat().st_mode & stat.S_ISGID
                or _SHARED.search((self.git_dir / "config").read_bytes())
            )
        except OSError:
            return False

    def loose_object(self, sha: str) -> tuple[bytes, bytes] | None:
        """(type, content) of object ``sha`` read from its loose file without a git process:
        None where it is not one (packed, in an alternate, elsewhere). Checked against its own
        id, so a damaged file reads as none."""
        try:
            raw = zlib.decompress(self._loose(sha).read_bytes())
        except (OSError, ValueError, zlib.error):
            return None
        digest = hashlib.sha1 if len(sha) == 40 else hashlib.sha256
        if digest(raw).hexdigest() != sha:
            return None
        header, _, body = raw.partition(b"\0")
        return header.split(b" ", 1)[0], body

    def _loose(self, sha: str) -> Path:
        """Where object ``sha`` is, if it is a loose object here."""
        return self.git_dir / "objects" / sha[:2] / sha[2:]

    def has_loose(self, sha: str, kind: bytes) -> bool:
        """Whether ``sha`` is a loose object of ``kind`` (``b"tree"``, …) here."""
        found = self.loose_object(sha)
        return found is not None and found[0] == kind

    def loose_commit(self, sha: str) -> tuple[str, list[str]] | None:
        """(tree, parents) of commit ``sha``, if it is a loose object here (loose_object)."""
        found = self.loose_object(sha)
        if found is None or found[0] != b"commit":
            return None
        tree, parents = "", []
        for line in found[1].split(b"\n"):
            if not line:  # the headers end at the first empty line
                break
            key, _, value = line.partition(b" ")
            if key == b"tree":
                tree = value.decode()
            elif key == b"parent":
                parents.append(value.decode())
        return (tree, parents) if tree else None

    async def update_ref(
        self, ref: str, new: str, old: str | None = None, keep: str | None = None
    ) -> None:
        """Set ``ref``; with ``old``, only if it still points there (compare-and-swap; ``""``:
        only if it does not exist). A mirror's ref is set on its remote first; ``keep``, a
        second ref pushed with it, keeps ``new`` reachable there after ``ref`` moves on."""
        if self.remote is not None:
            await self._push(ref, new, old, keep)
            old = None  # the remote decided; the mirror follows it
        moved = self.move_refs([(ref, new, old)])
        if moved is False:
            raise GitError(("update-ref", ref), 1, f"{ref} is not at {old or 'nothing'}")
        if moved is None:
            args = ["update-ref", "--no-deref", ref, new]
            if old is not None:
                args.append(old)
            await self.run(*args)

    async def write_tree(self) -> str:
        """``git write-tree`` of this context's index: the tree's id, its objects written. By
        libgit2 in this process where it can read the index and write the objects (else git)."""
        if self.index_file is not None and self.writes_own_objects():
            import pygit2

            try:
                repo = self.libgit2()
                return str(_index(self.index_file).write_tree(repo))
            except (pygit2.GitError, ValueError, OSError):
                pass  # an index libgit2 does not read (a split index, say): git's
        return await self.out("write-tree")

    async def read_tree(self, commit: str) -> None:
        """``git read-tree <commit>`` into this context's index (a new file): by libgit2 in
        this process for a full commit id (a name is git's to resolve)."""
        if self.index_file is not None and SHA_ID.fullmatch(commit):
            import pygit2

            try:
                repo = self.libgit2()
                index = _index(self.index_file)
                index.read_tree(repo[pygit2.Oid(hex=commit)].peel(pygit2.Tree))
                index.write()
                return
            except (pygit2.GitError, KeyError, ValueError, OSError):
                self.index_file.unlink(missing_ok=True)  # from nothing, as git reads it
        await self.run("read-tree", commit)

    def libgit2(self) -> pygit2.Repository:
        """This repository opened by libgit2 (raises where it cannot: a format it lacks)."""
        import pygit2
        from pygit2.enums import RepositoryOpenFlag

        return pygit2.Repository(str(self.git_dir), RepositoryOpenFlag.NO_SEARCH)

    def move_refs(self, moves: list[tuple[str, str | None, str | None]]) -> bool | None:
        """Each ``(ref, new, old)`` in one transaction, by libgit2 in this process (a git
        process costs milliseconds on every workstream's path): each ref locked, then, under
        the lock, checked to be at ``old`` when that is given (``""``: not there), then set to
        ``new`` (None: only checked). True when all moved; False when one was elsewhere
        (nothing moved); None where git itself should do it (libgit2 cannot open this
        repository, or anything else went wrong: nothing moved either, and git says why)."""
        import pygit2

        # A lock a killed worker left on one of these refs would refuse this move and every
        # retry of it (activities/lib/stale_locks.py); a mirror is uet's own whole.
        break_stale_ref_locks(self.git_dir, [m[0] for m in moves], any_ref=self.remote is not None)
        try:
            repo = self.libgit2()
            repo.set_ident(*UET_IDENT)  # the reflog's entries: uet moved these refs
            with repo.transaction() as moving:
                for ref, _, _ in moves:
                    moving.lock_ref(ref)
                for ref, new, old in moves:
                    if old is not None:
                        found = repo.references.get(ref)
                        if (str(found.target) if found is not None else "") != old:
                            raise _Elsewhere
                    if new is not None:
                        moving.set_target(ref, new, message="uet")
        except _Elsewhere:
            return False
        except (pygit2.GitError, KeyError, ValueError, OSError):
            return None
        return True

    async def delete_refs(self, refs: list[str]) -> None:
        """Delete ``refs`` in one transaction; one that is not there is no error."""
        if self.remote is not None and refs:
            there = await self.remote_refs(refs)
            gone = [r for r in refs if r in there]
            if gone:
                await self.run(
                    "push", "--atomic", "--porcelain", self.remote, *[f":{r}" for r in gone]
                )
        script = "".join(f"delete {ref}\n" for ref in refs)
        break_stale_ref_locks(self.git_dir, refs, any_ref=self.remote is not None)
        await self.run("update-ref", "--stdin", input=script.encode())

    async def remote_refs(self, refs: list[str]) -> dict[str, str]:
        """What the remote's ``refs`` point at now (those that exist)."""
        assert self.remote is not None
        listed = await self.out("ls-remote", "--", self.remote, *refs)
        found = (line.split("\t") for line in listed.splitlines() if "\t" in line)
        return {name: sha for sha, name in found if name in refs}

    async def _push(self, ref: str, new: str, old: str | None, keep: str | None) -> None:
        """``new`` to the remote's ``ref``: with ``old``, only over that value
        (``--force-with-lease`` semantics; ``""``: only where there is none). A push that
        loses the race but finds ``new`` there already is a retry of one that won."""
        assert self.remote is not None
        lease = [f"--force-with-lease={ref}:{old}"] if old is not None else []
        spec = f"{new}:{ref}" if old is not None else f"+{new}:{ref}"
        kept = [f"+{new}:{keep}"] if keep else []
        pushed = await self.run(
            "push", "--atomic", "--porcelain", *lease, self.remote, spec, *kept, check=False
        )
        if pushed.returncode == 0:
            return
        now = (await self.remote_refs([ref])).get(ref)
        if now == new:
            return
        raise GitError(
            ("push", self.remote, spec),
            pushed.returncode,
            f"{ref} is at {str(now)[:12]} on {redact_url(self.remote)}, expected "
            f"{(old or 'nothing')[:12]}: {pushed.stderr.decode('utf-8', 'replace').strip()}",
        )


async def run_git(
    *args: str,
    cwd: Path,
    input: bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    child_watcher.ensure()
    proc = await asyncio.create_subprocess_exec(
        "git",
        *SAFE_CONFIG,
        *args,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(cwd),
        env=clean_env(env),
    )
    stdout, stderr = await proc.communicate(input)
    assert proc.returncode is not None
    result = GitResult(proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise GitError(args, result.returncode, stderr.decode("utf-8", "replace"))
    return result


async def open_repository(path: str | Path) -> Git:
    """The user's repository as a Git context on its *common* git dir (refs and objects live
    there even when ``path`` is a linked worktree). Never with a work tree or index: uet does
    not touch the user's."""
    path = Path(path)
    if not path.is_dir():
        raise ApplicationError(
            f"repository {path} does not exist", type="RepositoryNotFound", non_retryable=True
        )
    known = _GIT_DIRS.get(str(path))
    if known is not None and (known / "HEAD").is_file() and (known / "objects").is_dir():
        return Git(git_dir=known)  # asked once per process: every activity opens it
    result = await run_git(
        "rev-parse", "--path-format=absolute", "--git-common-dir", cwd=path, check=False
    )
    if result.returncode != 0:
        raise ApplicationError(
            f"{path} is not a git repository", type="NotAGitRepository", non_retryable=True
        )
    _GIT_DIRS[str(path)] = Path(result.text)
    return Git(git_dir=Path(result.text))


#: A repository's path → its common git dir, as git said (checked still there when reused).
_GIT_DIRS: dict[str, Path] = {}


def redact_url(url: str) -> str:
    """``url`` without a password (``https://user:token@host/…`` → ``https://user@host/…``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _index(path: Path) -> pygit2.Index:
    """``pygit2.Index(path)``, whose finalizer would complain of one it failed to open (an
    extension libgit2 lacks): it frees nothing then."""
    import pygit2
    from pygit2.ffi import ffi

    index = pygit2.Index.__new__(pygit2.Index)
    setattr(index, "_index", ffi.NULL)  # noqa: B010 - what __del__ frees when __init__ fails
    index.__init__(str(path))  # type: ignore[misc]
    return index


def ident_env(date: str) -> dict[str, str]:
    """uet's fixed identity, author and committer, at ``date`` (``"<seconds> +0000"``)."""
    name, email = UET_IDENT
    return {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", name), ("EMAIL", email), ("DATE", date))
    }


def write_loose(objects: Path, kind: bytes, body: bytes, id_length: int) -> str:
    """Write an object as git does (``objects/xx/…``, zlib at core.looseCompression's default
    level, read-only, through a temporary file so a reader never sees half of it); its id.
    ``id_length`` says the repository's hash (40: SHA-1, 64: SHA-256). One already there is
    freshened, as git does, so a prune never takes it."""
    raw = b"%s %d\0" % (kind, len(body)) + body
    sha = (hashlib.sha1 if id_length == 40 else hashlib.sha256)(raw).hexdigest()
    final = objects / sha[:2] / sha[2:]
    if final.is_file():
        with contextlib.suppress(OSError):
            os.utime(final)
        return sha
    final.parent.mkdir(exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix="tmp_obj_", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(zlib.compress(raw, 1))
        os.chmod(temporary, 0o444)
        with contextlib.suppress(FileExistsError):  # written meanwhile: the same bytes
            os.link(temporary, final)
    finally:
        os.unlink(temporary)
    return sha


def objects_dir(repo: Git) -> Path:
    return repo.git_dir / "objects"


async def checkout(repo: Git, sha: str, path: Path, like: Path | None = None) -> Git:
    """A standalone repository at ``path`` whose branch ``uet`` and work tree are at ``sha``
    (``like``: as for borrowing_repository)."""
    local = await borrowing_repository(repo, path, like=like)
    await reset_to(local, sha)
    return local


async def borrowing_repository(repo: Git, tree: Path, like: Path | None = None) -> Git:
    """A new, empty ``.git`` in ``tree`` (its branch ``uet``, unborn) borrowing ``repo``'s
    objects. ``like``: such a ``.git``, made by git on the same file system (git init's
    config says what it found there), copied instead of a git process."""
    if like is not None and like.is_dir():
        shutil.copytree(like, tree / ".git", symlinks=True)
    else:
        await run_git("init", *INIT, str(tree), cwd=tree)
    alternates = tree / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(f"{objects_dir(repo)}\n")
    return Git(git_dir=tree / ".git", work_tree=tree)


async def git_dir_like(folder: Path) -> Path:
    """``folder/git-dir``: an empty ``.git`` as borrowing_repository makes it, made once (by
    git: its config holds what git init probes of the file system) for copies of it."""
    made = folder / "git-dir"
    if not made.is_dir():
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            await run_git("init", *INIT, tmp, cwd=Path(tmp))
            with contextlib.suppress(OSError):  # made meanwhile by another worker: the same
                os.rename(Path(tmp) / ".git", made)
    return made


async def reset_to(local: Git, sha: str) -> None:
    """Branch ``uet``, index and work tree at ``sha``: one ``reset --hard``, which sets the
    branch too (an unborn one as well)."""
    await local.run("reset", "--quiet", "--hard", sha)


async def resolve_commit(repo: Git, rev: str) -> str | None:
    return await repo.rev_parse(f"{rev}^{{commit}}")


async def apply_patch(git: Git, patch: Path, *, target: str, what: str) -> str:
    """Apply ``patch`` with ``git apply <target>`` (``--cached`` or ``--index``); git's output.

    A patch that does not apply never will: a non-retryable ``PatchDoesNotApply``.
    """
    result = await git.run("apply", target, "--whitespace=nowarn", str(patch), check=False)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    if result.returncode != 0:
        raise ApplicationError(
            f"{what} does not apply: {output.strip()[:500]}",
            type="PatchDoesNotApply",
            non_retryable=True,
        )
    return output
