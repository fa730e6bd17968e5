"""The patch catalog: every shape in PATCHES_AND_TOOLS.md, with its verdict and error code.

Hand-written patches cover what no honest tool produces; the rest are made by real git in a
scratch repository, exactly as uet captures a tool's change.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from activities.lib.patch_parse import parse_patch
from activities.lib.patch_policy import History, validate
from schemas.patch import PatchArtifact, ValidationReport
from schemas.spec import FileScope, PatchPolicy


def check(
    data: bytes,
    *,
    allowed: list[str] | None = None,
    forbidden: list[str] | None = None,
    history: History | None = None,
    **policy: object,
) -> ValidationReport:
    parsed = parse_patch(data)
    scope = FileScope(allowed_paths=allowed or [], forbidden_paths=forbidden or [])
    return validate(parsed, len(data), scope, PatchPolicy(**policy), history or History())


def codes(report: ValidationReport) -> list[tuple[str, str | None]]:
    return [(e.code, e.path) for e in report.errors]


def new_file(path: str, body: str = "x\n", mode: str = "100644") -> bytes:
    lines = body.splitlines()
    hunk = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode {mode}\n"
        f"index 0000000..1111111\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{hunk}"
    ).encode()


# -- hand-written: shapes git would never write for an honest change ---------------------------


@pytest.mark.parametrize(
    ("patch", "code", "path"),
    [
        (new_file("../outside.txt"), "parent_traversal", "../outside.txt"),
        (new_file("src/../../outside.txt"), "parent_traversal", "src/../../outside.txt"),
        (new_file("/etc/passwd"), "absolute_path", "/etc/passwd"),
        (new_file(".git/config"), "git_dir", ".git/config"),
        (new_file(".GIT/hooks/pre-commit"), "git_dir", ".GIT/hooks/pre-commit"),
        (new_file("sub/.Git/config"), "git_dir", "sub/.Git/config"),
        (new_file(".git./config"), "git_dir", ".git./config"),
        (new_file(".gitmodules"), "protected_path", ".gitmodules"),
        (new_file(".gitattributes", "* filter=evil\n"), "protected_path", ".gitattributes"),
        (new_file(".github/workflows/ci.yml"), "protected_path", ".github/workflows/ci.yml"),
        (new_file("a//b.txt"), "not_normalized", "a//b.txt"),
        (new_file("./a.txt"), "not_normalized", "./a.txt"),
        (new_file("evil", "../../etc/passwd", mode="120000"), "symlink_escape", "evil"),
        (new_file("evil", "/etc/passwd", mode="120000"), "symlink_escape", "evil"),
        (new_file("hook", ".git/hooks/post-checkout", mode="120000"), "git_dir", "hook"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_hostile_paths_are_refused(patch: bytes, code: str, path: str) -> None:
    report = check(patch)
    assert not report.scope_ok
    assert (code, path) in codes(report)


def test_gitlink_is_refused() -> None:
    patch = (
        b"diff --git a/vendor/lib b/vendor/lib\nnew file mode 160000\n"
        b"index 0000000..2222222\n--- /dev/null\n+++ b/vendor/lib\n"
        b"@@ -0,0 +1 @@\n+Subproject commit 2222222222222222222222222222222222222222\n"
    )
    assert ("gitlink", "vendor/lib") in codes(check(patch))


def test_garbage_between_file_sections() -> None:
    patch = new_file("a.txt") + b"rm -rf / # a line that belongs to no file\n" + new_file("b.txt")
    report = check(patch)
    assert not report.format_ok
    assert codes(report)[0] == ("garbage_between_files", "a.txt")


def test_a_preamble_before_the_first_file_is_allowed() -> None:
    patch = b"From 1234 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] add\n\n---\n" + new_file("a.txt")
    assert check(patch).ok


def test_hunk_shorter_than_its_header() -> None:
    patch = b"diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n"
    report = check(patch)
    assert not report.format_ok and codes(report)[0][0] == "unparseable"


def test_not_a_diff_at_all() -> None:
    assert codes(check(b"hello, I am not a patch\n")) == [("unparseable", None)]


def test_quoted_names_are_read_back_exactly() -> None:
    patch = (
        b'diff --git "a/caf\\303\\251 \\"menu\\".txt" "b/caf\\303\\251 \\"menu\\".txt"\n'
        b"new file mode 100644\nindex 0000000..1111111\n--- /dev/null\n"
        b'+++ "b/caf\\303\\251 \\"menu\\".txt"\n@@ -0,0 +1 @@\n+x\n'
    )
    parsed = parse_patch(patch)
    assert [f.path for f in parsed.stats.files] == ['café "menu".txt']
    assert check(patch, allowed=["caf*"]).ok


# -- made by real git ---------------------------------------------------------------------------


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> bytes:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root)}
        return subprocess.run(
            [
                "git",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "core.quotePath=false",
                *args,
            ],
            cwd=self.root,
            env=env,
            check=True,
            capture_output=True,
        ).stdout

    def write(self, path: str, data: bytes | str, mode: int | None = None) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            target.chmod(mode)

    def commit(self) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "c")

    def diff(self) -> bytes:
        """The change in the work tree, captured the way uet captures a tool's change."""
        self.git("add", "-A")
        return self.git(
            "diff",
            "--cached",
            "--binary",
            "--full-index",
            "--no-renames",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "HEAD",
        )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "r")
    r.write("README.md", "hello\n")
    r.write("empty.txt", "")
    r.write("src/app.py", "print('a')\n")
    r.write("tool.sh", "echo hi\n")
    r.write("old.bin", b"\x00\x01\x02")
    r.commit()
    return r


def test_symlink_inside_the_repo_is_fine(repo: Repo) -> None:
    (repo.root / "docs").mkdir()
    os.symlink("../README.md", repo.root / "docs" / "readme-link")
    report = check(repo.diff())
    assert report.ok, report.errors
    (change,) = parse_patch(repo.diff()).stats.files
    assert change.symlink and change.kind == "added"


def test_symlink_out_of_the_repo(repo: Repo) -> None:
    os.symlink("../../../etc/passwd", repo.root / "src" / "passwd")
    assert ("symlink_escape", "src/passwd") in codes(check(repo.diff()))


def test_binary_needs_allow_binary(repo: Repo) -> None:
    repo.write("old.bin", b"\x00\x09\x08\x07")
    repo.write("new.bin", bytes(range(256)))
    patch = repo.diff()
    assert codes(check(patch)) == [
        ("binary_not_allowed", "new.bin"),
        ("binary_not_allowed", "old.bin"),
    ]
    report = check(patch, allow_binary=True)
    assert report.ok
    kinds = {f.path: (f.kind, f.binary) for f in parse_patch(patch).stats.files}
    assert kinds == {"new.bin": ("added", True), "old.bin": ("modified", True)}


def test_crlf_and_lone_cr_content_is_accepted_and_counted(repo: Repo) -> None:
    repo.write("win.txt", "one\r\ntwo\r\n")
    repo.write("cr.txt", "a lone\rcarriage return\n")
    patch = repo.diff()
    report = check(patch)
    assert report.ok, report.errors
    stats = parse_patch(patch).stats
    assert stats.insertions == 3 and stats.files_changed == 2


def test_non_ascii_and_space_names(repo: Repo) -> None:
    repo.write("docs/résumé final.md", "# CV\n")
    repo.write("naïve dir/a b.txt", "x\n")
    patch = repo.diff()
    assert sorted(f.path for f in parse_patch(patch).stats.files) == [
        "docs/résumé final.md",
        "naïve dir/a b.txt",
    ]
    assert check(patch, allowed=["docs/**", "naïve dir/*"]).ok
    assert codes(check(patch, allowed=["docs/**"])) == [("out_of_scope", "naïve dir/a b.txt")]


def test_modifying_an_empty_file_is_a_modification(repo: Repo) -> None:
    repo.write("empty.txt", "now it has content\n")
    (change,) = parse_patch(repo.diff()).stats.files
    assert change.kind == "modified" and change.insertions == 1


def test_deletion_needs_allow_deletions(repo: Repo) -> None:
    (repo.root / "tool.sh").unlink()
    patch = repo.diff()
    assert check(patch).ok
    assert codes(check(patch, allow_deletions=False)) == [("deletion_not_allowed", "tool.sh")]
    assert not check(patch, allow_deletions=False).constraints_ok


def test_mode_change(repo: Repo) -> None:
    (repo.root / "tool.sh").chmod(0o755)
    patch = repo.diff()
    (change,) = parse_patch(patch).stats.files
    assert (change.kind, change.old_mode, change.new_mode) == ("mode_change", "100644", "100755")
    assert check(patch).ok


def test_size_and_count_limits(repo: Repo) -> None:
    for i in range(5):
        repo.write(f"gen/f{i}.txt", "".join(f"line {n}\n" for n in range(100)))
    patch = repo.diff()
    assert check(patch).ok
    assert codes(check(patch, max_patch_bytes=1000)) == [("too_large", None)]
    assert codes(check(patch, max_files_changed=4)) == [("too_many_files", None)]
    assert codes(check(patch, max_lines_changed=499)) == [("too_many_lines", None)]
    assert codes(check(patch, max_hunks=4)) == [("too_many_hunks", None)]


def test_scope_and_forbidden_globs(repo: Repo) -> None:
    repo.write("src/app.py", "print('b')\n")
    repo.write("src/secrets/key.txt", "k\n")
    repo.write("README.md", "changed\n")
    patch = repo.diff()
    assert codes(check(patch, allowed=["src/**"], forbidden=["src/secrets/**"])) == [
        ("out_of_scope", "README.md"),
        ("forbidden_path", "src/secrets/key.txt"),
    ]
    assert check(patch, allowed=["src/**", "README.md"]).ok


def test_exact_reverse_of_an_integrated_patch_is_oscillation(repo: Repo) -> None:
    repo.write("src/app.py", "print('b')\n")
    forward = parse_patch(repo.diff())
    repo.commit()
    repo.write("src/app.py", "print('a')\n")
    backward = repo.diff()
    history = History(integrated={forward.reverse_fingerprint: "01PATCHFORWARD"})
    report = check(backward, history=history)
    assert codes(report) == [("oscillation", None)]
    assert "exactly reverses patch 01PATCHFORWARD" in report.errors[0].message
    assert check(repo.diff()).ok  # without that history it is an ordinary change


def _attempt(patch: bytes, attempt: int) -> PatchArtifact:
    parsed = parse_patch(patch)
    return PatchArtifact(
        patch_id=f"P{attempt}",
        sha256="0" * 64,
        size=len(patch),
        uri="file:///x",
        base_sha="0" * 40,
        tool_id="shell",
        workstream_id="ws",
        attempt=attempt,
        stats=parsed.stats,
        fingerprint=parsed.fingerprint,
        reverse_fingerprint=parsed.reverse_fingerprint,
    )


def test_fix_attempts_that_go_round_in_circles(repo: Repo) -> None:
    repo.write("src/app.py", "print('A')\n")
    one = repo.diff()
    repo.write("src/app.py", "print('B')\n")
    two = repo.diff()
    # The same patch again: no progress.
    report = check(one, history=History(earlier_attempts=[_attempt(one, 1)]))
    assert codes(report) == [("oscillation", None)]
    # A -> B -> A: the file goes back to what attempt 1 made it.
    repo.write("src/app.py", "print('A')\n")
    repo.write("README.md", "and something new\n")
    three = repo.diff()
    report = check(three, history=History(earlier_attempts=[_attempt(one, 1), _attempt(two, 2)]))
    assert codes(report) == [("oscillation", "src/app.py")]
    # A -> B -> C is progress.
    repo.write("src/app.py", "print('C')\n")
    assert check(
        repo.diff(), history=History(earlier_attempts=[_attempt(one, 1), _attempt(two, 2)])
    ).ok


def test_stats_match_git_numstat(repo: Repo) -> None:
    repo.write("src/app.py", "print('b')\nprint('c')\n")
    repo.write("README.md", "hello\nworld\n")
    (repo.root / "tool.sh").unlink()
    patch = repo.diff()
    numstat = repo.git("diff", "--cached", "--numstat", "HEAD").decode().split()
    stats = parse_patch(patch).stats
    assert stats.insertions == sum(int(x) for x in numstat[0::3])
    assert stats.deletions == sum(int(x) for x in numstat[1::3])
    assert stats.files_changed == len(numstat) // 3
