"""A change captured from an index in one git process: the paths exactly (quotes, spaces,
non-ASCII, deletions, a binary file, a mode change) and the same patch `git diff` prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import git_out

from activities.lib.git import Git
from activities.tools import DIFF_FLAGS, diff_index


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout


async def test_paths_and_patch_match_what_git_says_separately(make_repo) -> None:  # type: ignore[no-untyped-def]
    repo: Path = make_repo({"a.txt": "a\n", "sp ace.txt": "x\n", "run.sh": "echo\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("a\nb\n")
    (repo / 'n"q.txt').write_text("quoted\n")
    (repo / "été.txt").write_text("accents\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    (repo / "sp ace.txt").unlink()
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "--all")
    index = Git(git_dir=repo / ".git", work_tree=repo)
    patch, files = await diff_index(index, base)
    # What two separate git runs say, with the same configuration uet runs git with.
    names = (await index.run("diff", "--cached", "--name-only", "-z", "--no-renames", base)).stdout
    expected = [n.decode("utf-8", "surrogateescape") for n in names.split(b"\0") if n]
    assert files == expected
    assert set(files) == {"a.txt", 'n"q.txt', "été.txt", "blob.bin", "sp ace.txt", "run.sh"}
    assert patch == (await index.run("diff", "--cached", *DIFF_FLAGS, base)).stdout
    assert b"GIT binary patch" in (patch or b"") and b"new mode 100755" in (patch or b"")


async def test_no_change_is_none(make_repo) -> None:  # type: ignore[no-untyped-def]
    repo: Path = make_repo({"a.txt": "a\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    assert await diff_index(Git(git_dir=repo / ".git", work_tree=repo), base) == (None, [])


def test_quoted_paths_are_unquoted() -> None:
    from activities.tools import _unquote

    assert _unquote(b'"\\303\\251t\\303\\251.txt"') == "été.txt"
    assert _unquote(b'"n\\"q.txt"') == 'n"q.txt'
    assert _unquote(b'"tab\\there"') == "tab\there"
    assert _unquote(b"plain name.txt") == "plain name.txt"
