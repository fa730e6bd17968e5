"""The checkout pool: a reused checkout, whatever the last step did to it, is exactly what a
fresh checkout of the new commit is — file by file, modes, symlinks and empty-directory
removal included — except the cached directories it was told to keep."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from helpers import git_out

from activities.lib.git import checkout, open_repository
from activities.lib.workspace.pool import checkout_slot


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path but .git: (kind, mode bits, content or link target)."""
    found: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (d == ".git" and Path(dirpath) == root)]
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                if not (path.is_dir() and name == ".git"):
                    found[relative] = ("dir", 0, b"")
            else:
                found[relative] = ("file", stat.S_IMODE(info.st_mode) & 0o111, path.read_bytes())
    return found


def mess_up(tree: Path) -> None:
    """What a tool may leave behind."""
    (tree / "a.txt").write_text("changed\n")
    (tree / "run.sh").chmod(0o644)  # lost its x bit
    (tree / "sub" / "deep.txt").unlink()
    (tree / "link").unlink()
    (tree / "link").write_text("not a link any more\n")
    (tree / "new.txt").write_text("untracked\n")
    (tree / "build").mkdir()
    (tree / "build" / "out.o").write_bytes(b"\0\1")  # ignored by .gitignore
    (tree / "nested").mkdir()
    subprocess.run(["git", "init", "-q", str(tree / "nested")], check=True)
    (tree / "emptydir").mkdir()
    (tree / ".venv").mkdir()
    (tree / ".venv" / "kept").write_text("cached\n")
    git = ["git", "-C", str(tree)]
    subprocess.run([*git, "config", "alias.x", "!touch PWNED"], check=True)
    hooks = tree / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_text("#!/bin/sh\ntouch HOOKED\n")
    (hooks / "post-checkout").chmod(0o755)
    (tree / ".git" / "info").mkdir(exist_ok=True)
    (tree / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    subprocess.run([*git, "add", "a.txt", "new.txt", "link"], check=True)  # the index: theirs


async def test_a_reused_checkout_is_a_fresh_one(make_repo, tmp_path: Path) -> None:
    repo_dir: Path = make_repo(
        {"a.txt": "a\n", "run.sh": "#!/bin/sh\necho hi\n", "sub/deep.txt": "d\n"}
    )
    (repo_dir / "run.sh").chmod(0o755)
    (repo_dir / "link").symlink_to("a.txt")
    (repo_dir / ".gitignore").write_text("build/\n.venv/\n")
    git_out(repo_dir, "add", "-A")
    git_out(repo_dir, "commit", "-qm", "modes and a link")
    first = git_out(repo_dir, "rev-parse", "HEAD")
    (repo_dir / "b.txt").write_text("b\n")
    (repo_dir / "sub" / "deep.txt").write_text("d2\n")
    git_out(repo_dir, "add", "-A")
    git_out(repo_dir, "commit", "-qm", "second")
    second = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"

    async with checkout_slot(home, repo, first, {}, fallback=tmp_path / "x") as slot:
        assert not slot.reused
        mess_up(slot.tree)
    for commit, keep in ((second, {}), (first, {".venv": "K"})):
        async with checkout_slot(home, repo, commit, keep, fallback=tmp_path / "x") as slot:
            assert slot.reused
            fresh = tmp_path / f"fresh-{commit[:7]}"
            fresh.mkdir()
            await checkout(repo, commit, fresh)
            got, want = snapshot(slot.tree), snapshot(fresh)
            assert got == want, set(got.items()) ^ set(want.items())
            assert not (slot.tree / "HOOKED").exists() and not (slot.tree / "PWNED").exists()
            assert "alias" not in (slot.tree / ".git" / "config").read_text()
            status = subprocess.run(
                ["git", "-C", str(slot.tree), "status", "--porcelain", "--ignored"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert status == ""
            # A cached dir, made by this step (its key K is wanted) and sealed as the
            # workspace does once setup or restore made it: the next may keep it.
            (slot.tree / ".venv").mkdir(exist_ok=True)
            (slot.tree / ".venv" / "kept").write_text("cached\n")
            slot.seal([".venv"])
    # The last round kept .venv (its key held); a fresh checkout has none, the rest is equal.
    async with checkout_slot(home, repo, first, {".venv": "K"}, fallback=tmp_path / "x") as slot:
        assert slot.caches == {".venv": "K"}
        assert (slot.tree / ".venv" / "kept").read_text() == "cached\n"
        got = {k: v for k, v in snapshot(slot.tree).items() if not k.startswith(".venv")}
        assert got == snapshot(tmp_path / f"fresh-{first[:7]}")
        # The step writes into it after it got it, as a tool may.
        (slot.tree / ".venv" / "kept").write_text("changed by the tool\n")
    # Changed since it was sealed: not kept (the workspace restores it from the cache).
    async with checkout_slot(home, repo, first, {".venv": "K"}, fallback=tmp_path / "x") as slot:
        assert slot.caches == {} and not (slot.tree / ".venv").exists()
        (slot.tree / ".venv").mkdir()
        (slot.tree / ".venv" / "kept").write_text("cached\n")
        slot.seal([".venv"])
        (slot.tree / ".venv" / "new-file").write_text("a file added counts too\n")
    async with checkout_slot(home, repo, first, {".venv": "K"}, fallback=tmp_path / "x") as slot:
        assert slot.caches == {}
    # Another key: the cached dir goes.
    async with checkout_slot(
        home, repo, first, {".venv": "OTHER"}, fallback=tmp_path / "x"
    ) as slot:
        assert not (slot.tree / ".venv").exists()


async def test_busy_slots_give_more_checkouts_and_a_freed_one_is_reused(
    make_repo, tmp_path: Path
) -> None:
    repo_dir: Path = make_repo({"a.txt": "a\n"})
    head = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"
    async with (
        checkout_slot(home, repo, head, {}, fallback=tmp_path / "f1") as one,
        checkout_slot(home, repo, head, {}, fallback=tmp_path / "f2") as two,
    ):
        assert one.tree != two.tree
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "f3") as again:
        assert again.reused and again.tree in (one.tree, two.tree)


async def test_gc_removes_pooled_checkouts_unused_since_the_limit_but_not_a_held_one(
    make_repo, tmp_path: Path
) -> None:
    import time

    from activities.lib import gc

    repo_dir: Path = make_repo({"a.txt": "a\n"})
    head = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"
    async with (
        checkout_slot(home, repo, head, {}, fallback=tmp_path / "f1") as old,
        checkout_slot(home, repo, head, {}, fallback=tmp_path / "f2") as held,
    ):
        pass
    month_ago = time.time() - 30 * 86400
    for slot in (old, held):
        os.utime(slot.tree.parent / "slot.json", (month_ago, month_ago))
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "f3") as busy:
        os.utime(busy.tree.parent / "slot.json", (month_ago, month_ago))  # old, but in use
        plan = gc.plan_gc(home, 14 * 86400, set(), time.time())
        pooled = [item for item in plan.items if item.kind == "pool"]
        assert [Path(item.path) for item in pooled] == [
            s.tree.parent for s in (old, held) if s.tree.parent != busy.tree.parent
        ]
        gc.apply(plan)
        assert busy.tree.is_dir()
    assert sum(1 for p in (old, held) if p.tree.parent.exists()) == 1  # the busy one stays


async def test_a_slot_whose_git_was_swapped_for_another_repository_never_touches_it(
    make_repo, tmp_path: Path
) -> None:
    other: Path = make_repo({"other.txt": "other\n"}, name="other")
    before = (git_out(other, "for-each-ref"), (other / ".git" / "config").read_text())
    repo_dir: Path = make_repo({"a.txt": "a\n"})
    head = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"
    for swap in ("pointer", "symlink"):
        async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "f") as slot:
            dot = slot.tree / ".git"
            subprocess.run(["rm", "-rf", str(dot)], check=True)
            if swap == "pointer":
                dot.write_text(f"gitdir: {other}/.git\n")
            else:
                dot.symlink_to(other / ".git")
        async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "f") as slot:
            assert slot.reused and (slot.tree / ".git").is_dir()
            assert not (slot.tree / ".git").is_symlink()
            assert (slot.tree / "a.txt").read_text() == "a\n"
    assert (git_out(other, "for-each-ref"), (other / ".git" / "config").read_text()) == before
    assert git_out(other, "status", "--porcelain") == ""


async def test_a_step_takes_the_free_slot_that_holds_its_cache(make_repo, tmp_path: Path) -> None:
    """Of the free slots, one that holds the wanted cache is taken (no restore); a step
    without caches takes the lowest."""
    repo_dir: Path = make_repo({"a.txt": "a\n", ".gitignore": ".deps/\n"})
    repo = await open_repository(repo_dir)
    head = git_out(repo_dir, "rev-parse", "HEAD")
    home = tmp_path / "home"
    wanted = {".deps": "K1"}
    async with (
        checkout_slot(home, repo, head, {}, fallback=tmp_path / "f") as plain,
        checkout_slot(home, repo, head, wanted, fallback=tmp_path / "f") as cached,
    ):
        (cached.tree / ".deps").mkdir()
        (cached.tree / ".deps" / "lib.js").write_text("kept\n")
        cached.seal([".deps"])
    assert plain.tree != cached.tree
    async with checkout_slot(home, repo, head, wanted, fallback=tmp_path / "f") as again:
        assert again.tree == cached.tree and again.caches == wanted
        assert (again.tree / ".deps" / "lib.js").read_text() == "kept\n"
    async with checkout_slot(home, repo, head, {".deps": "K2"}, fallback=tmp_path / "f") as other:
        assert other.tree == plain.tree  # nobody holds K2: the lowest
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "f") as none:
        assert none.tree == plain.tree


async def test_a_same_size_edit_in_the_checkouts_second_is_seen(make_repo, tmp_path: Path) -> None:
    """Git compares whole seconds: a tool rewriting a file with as many bytes in the second
    the checkout wrote it leaves stat data that matches the index. Only the index's own mtime
    tells git to look again, so every copy of the index must keep it — else the change is
    lost from the patch and stays in the tree for the next step (seen on CI: a revert that
    the oscillation check never got to see)."""
    import time

    from activities.lib.state_dir import StateDir
    from activities.tools import capture_change

    repo_dir: Path = make_repo({"mode.txt": "safe\n"})
    commit = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"
    state = StateDir(home)
    for _ in range(5):  # the checkout and the edit must fall in one second
        time.sleep(1 - time.time() % 1 + 0.01)
        async with checkout_slot(home, repo, commit, {}, tmp_path / "fallback") as slot:
            target = slot.tree / "mode.txt"
            target.write_text("fast\n")
            same_second = int(target.stat().st_mtime) == int(slot.pristine_index().stat().st_mtime)  # type: ignore[union-attr]
            time.sleep(1 - time.time() % 1 + 0.01)  # the capture happens a second later
            patch, files, tree = await capture_change(
                repo, slot.tree, commit, state, "run", seed_index=slot.pristine_index()
            )
        assert files == ["mode.txt"] and patch is not None and b"+fast" in patch
        assert tree is not None and git_out(repo.git_dir, "show", f"{tree}:mode.txt") == "fast"
        async with checkout_slot(home, repo, commit, {}, tmp_path / "fallback") as again:
            assert again.reused
            assert (again.tree / "mode.txt").read_text() == "safe\n"
        if same_second:
            return
    raise AssertionError("the edit never fell in the checkout's second: the test proved nothing")


async def test_a_reset_copies_the_pools_empty_git_dir_instead_of_running_git_init(
    make_repo, tmp_path: Path, monkeypatch
) -> None:
    """The reused slot's .git is file for file what a fresh checkout's git init makes (but the
    index's stat data), the tool's own .git gone, and no git init ran for it. A new slot's
    .git is such a copy too: the one git init makes the pool's empty .git."""
    import activities.lib.git as git_module

    repo_dir: Path = make_repo({"a.txt": "a\n"})
    head = git_out(repo_dir, "rev-parse", "HEAD")
    repo = await open_repository(repo_dir)
    home = tmp_path / "home"
    ran: list[tuple[str, ...]] = []
    run_git = git_module.run_git

    async def counted(*args: str, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(args)
        return await run_git(*args, **kwargs)

    monkeypatch.setattr(git_module, "run_git", counted)
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "x") as slot:
        git = ["git", "-C", str(slot.tree)]
        subprocess.run([*git, "config", "alias.x", "!touch PWNED"], check=True)
        (slot.tree / ".git" / "hooks").mkdir()
        (slot.tree / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\n")
    inits = [a[-1] for a in ran if a[0] == "init"]
    assert len(inits) == 1 and Path(inits[0]).parent == slot.tree.parent.parent  # the pool's
    ran.clear()
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "x") as slot:
        pass
    assert not [a for a in ran if a[0] == "init"]
    ran.clear()
    async with checkout_slot(home, repo, head, {}, fallback=tmp_path / "x") as slot:
        assert slot.reused
        reused = slot.tree / ".git"
        assert not [a for a in ran if a[0] == "init"]
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        await checkout(repo, head, fresh)

        def files(git_dir: Path) -> dict[str, bytes | None]:
            return {
                str(p.relative_to(git_dir)): None if p.is_dir() else p.read_bytes()
                for p in sorted(git_dir.rglob("*"))
                if p.name != "index"
            }

        assert files(reused) == files(fresh / ".git")
