"""The OS sandbox of one tool, gate or setup process: bubblewrap, rlimits and cgroups.

``plan_sandbox`` turns a :class:`~schemas.sandbox.SandboxSpec` into a :class:`SandboxPlan` for one
process; ``run_process(..., sandbox=plan)`` runs the command under it. The layout inside, in
the order bwrap mounts it (a later mount covers an earlier one):

1. the whole file system read-only (``--ro-bind / /``), a fresh ``/proc`` (with ``/proc/sys``
   read-only: as root, its files are writable by uid 0 whatever the capabilities) and a
   minimal ``/dev``;
2. not visible at all — an empty read-only tmpfs over each: uet's state dir (artifacts, the
   checkout pool, the other runs' checkouts), the user's work tree (its ``.git`` included),
   anything else the caller hides, and ``/run`` (sockets such as docker's or dbus's; a
   ``/etc/resolv.conf`` that lives there is bound back);
3. a private ``/tmp`` and a private, writable home at the real home's path (``$HOME`` and
   ``~/…`` paths resolve into it), both directories of the caller's scratch dir; seeds (a tool's
   own config) copied or bound read-only into that home;
4. the spec's ``readable`` (read-only) and ``writable`` paths;
5. the repository's object store read-only (the checkout's alternates point there) and the
   checkout read-write, at the same paths as outside.

The process has no capabilities (``--cap-drop ALL``: a worker running as root would otherwise
keep them and could unmount the tmpfs that hides a directory), its own user (where it can),
pid, ipc and uts namespaces, and no network unless asked for (``--unshare-net`` leaves it a
loopback of its own). ``--die-with-parent`` ties it to the worker. ``--new-session`` is not
used: ``run_process`` starts the sandbox in a session of its own already (no controlling
terminal, so no TIOCSTI), and keeping the command in bwrap's process group is what lets the
SIGTERM of a timeout or a cancellation reach it before the SIGKILL; whatever leaves the group
dies with the pid namespace when bwrap goes.

Limits: ``cpu_s`` and ``file_mb`` are rlimits of every process in the tree; ``memory_mb`` and
``pids`` are a cgroup per process (v1 ``memory``/``pids`` controllers, or v2 with the controllers
delegated) where the worker can create one, else RLIMIT_AS / RLIMIT_NPROC (weaker: per process,
per user; the plan's ``notes`` say so). ``limits`` hold with ``mode: none`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import math
import os
import resource
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from temporalio.exceptions import ApplicationError

from activities.lib.pids import pid_exists
from schemas.sandbox import LimitName, SandboxLimits, SandboxMode, SandboxSpec

BWRAP = "bwrap"
#: bwrap's own processes in the tree (the monitor outside, the reaper as pid 1 inside): added
#: to ``pids`` so that the limit counts the command's processes.
BWRAP_PIDS = 2
#: RLIMIT_CPU: the hard limit (SIGKILL) this long after the soft one (SIGXCPU).
CPU_GRACE_S = 1
#: What each limit's failure is called.
LIMIT_REASONS: dict[LimitName, str] = {
    "memory": "limit_memory",
    "pids": "limit_pids",
    "cpu": "limit_cpu",
    "file_size": "limit_file_size",
}


# --- can bwrap run here -------------------------------------------------------------------


def probe() -> str | None:
    """None if bubblewrap can run sandboxes here, else one line: what is missing and what to
    set or install. Cached per process (and per bwrap binary found on PATH)."""
    return _probe(shutil.which(BWRAP))


def bwrap_binary() -> str:
    """The bwrap to run, or ``SandboxUnavailable``: a phase that asked for a sandbox never runs
    without one."""
    binary = shutil.which(BWRAP)
    problem = _probe(binary)
    if problem is not None or binary is None:
        raise ApplicationError(
            problem or "bubblewrap is not installed", type="SandboxUnavailable", non_retryable=True
        )
    return binary


@functools.cache
def _probe(binary: str | None) -> str | None:
    if binary is None:
        return (
            "sandbox mode bwrap needs bubblewrap, which is not installed (no bwrap on PATH): "
            "install it (apt-get install bubblewrap / dnf install bubblewrap) or set sandbox "
            "mode: none"
        )
    argv = [binary, *_NAMESPACES, "--unshare-net", *_BASE_MOUNTS, "--", "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, cwd="/", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({binary}) cannot be started ({exc}): fix it or set sandbox mode: none"
    if done.returncode == 0:
        return None
    said = " ".join(done.stderr.decode("utf-8", "replace").split())[:300] or (
        f"exit status {done.returncode}"
    )
    lowered = said.lower()
    if "namespace" in lowered or "uid map" in lowered:
        return f"bubblewrap cannot create a user namespace ({said}): {_userns_hint()}"
    if "not permitted" in lowered or "permission denied" in lowered:
        return f"bubblewrap may not set up its sandbox here ({said}): {_userns_hint()}"
    return f"bubblewrap does not work here ({said}): fix that or set sandbox mode: none"


def _userns_hint() -> str:
    def sysctl(name: str) -> str | None:
        try:
            return Path("/proc/sys", *name.split(".")).read_text().strip()
        except OSError:
            return None

    if sysctl("kernel.unprivileged_userns_clone") == "0":
        fix = "set kernel.unprivileged_userns_clone=1"
    elif sysctl("user.max_user_namespaces") == "0":
        fix = "set user.max_user_namespaces=15000"
    elif sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        fix = (
            "set kernel.apparmor_restrict_unprivileged_userns=0 (or give bwrap an AppArmor "
            "profile that allows user namespaces)"
        )
    else:
        fix = (
            "allow user namespaces and mounts where the worker runs (in a container: a seccomp "
            "and AppArmor profile that permit them)"
        )
    return f"{fix}, or run with sandbox mode: none"


#: Namespaces and privileges, the same for the probe and every plan.
_NAMESPACES = (
    "--unshare-user-try",
    "--cap-drop",
    "ALL",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--die-with-parent",
)
_BASE_MOUNTS = (
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    # A fresh procfs lets uid 0 write sysctls (their files check the uid, not capabilities).
    "--ro-bind",
    "/proc/sys",
    "/proc/sys",
    "--ro-bind-try",
    "/proc/sysrq-trigger",
    "/proc/sysrq-trigger",
)


# --- the plan for one process --------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """Something a tool needs in its home (its config, its login): ``source`` on the host,
    ``target`` relative to the private home (default: where it is under the real home, else its
    name). Copied (the tool may change its copy, never the original) or bound read-only."""

    source: Path
    target: str | None = None
    copy: bool = True


@dataclass(frozen=True)
class Rlimit:
    resource: int
    soft: int
    hard: int


@dataclass(frozen=True)
class CgroupPlace:
    """Where this worker can make a cgroup for a controller: a v1 hierarchy's directory, or a
    v2 directory whose children get the controller."""

    version: Literal[1, 2]
    parent: Path


@dataclass(frozen=True)
class SandboxPlan:
    """How to run one process: the argv prefix, environment overrides and limits."""

    mode: SandboxMode
    #: ``bwrap … --chdir <checkout> --`` (empty with ``mode: none``); :meth:`wrap` puts a
    #: command after it, in the directory it runs in.
    prefix: tuple[str, ...]
    #: HOME and TMPDIR inside the sandbox (empty with ``mode: none``).
    env: Mapping[str, str]
    limits: SandboxLimits
    network: bool
    rlimits: tuple[Rlimit, ...] = ()
    #: controller ("memory", "pids") → where its per-process cgroup goes.
    cgroups: Mapping[str, CgroupPlace] = field(default_factory=dict)
    memory_bytes: int | None = None
    pids_max: int | None = None
    #: How limits are enforced where it is weaker than asked (fallbacks), for the run's log.
    notes: tuple[str, ...] = ()
    #: Host directories behind the private home and /tmp (None with ``mode: none``).
    home: Path | None = None
    tmp: Path | None = None

    @property
    def confined(self) -> bool:
        """The process sees only what the plan shows (bwrap), and never uet's state dir or
        the user's work tree and git dir: ``plan_sandbox`` hides them and refuses a
        ``readable``/``writable`` path that would show them."""
        return self.mode == "bwrap"

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """``argv`` under the sandbox, starting in ``cwd`` (a path the sandbox shows)."""
        if not self.prefix:
            return list(argv)
        assert self.prefix[-3] == "--chdir" and self.prefix[-1] == "--"
        return [*self.prefix[:-2], os.path.realpath(cwd), "--", *argv]

    def start(self) -> SandboxRun:
        """The resources of one run (its cgroups, made now): attach the child with
        ``preexec``, end with ``finish``."""
        return SandboxRun(self, _make_cgroups(self))

    def exec_failed(self, tail: str, argv0: str) -> bool:
        """bwrap could not start ``argv0`` (missing or not executable): what ``not_found``
        means without a sandbox."""
        return bool(self.prefix) and any(
            f"bwrap: execvp {argv0}: {why}" in tail
            for why in ("No such file or directory", "Permission denied")
        )


def plan_sandbox(
    spec: SandboxSpec,
    *,
    checkout: Path,
    object_store: Path | Sequence[Path],
    scratch: Path,
    uet_home: Path,
    user_tree: Path | None,
    network_default: bool,
    seeds: Sequence[Seed] = (),
    hidden: Sequence[Path] = (),
    exposed: Sequence[Path] = (),
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SandboxPlan:
    """The plan for one process in ``checkout`` (read-write) that reads ``object_store``
    (the checkout's alternates; their own alternates follow). ``scratch`` gets ``home/`` and
    ``tmp/``. Not visible inside: ``uet_home``, ``user_tree`` and ``hidden`` (e.g. the user's
    git dir when it is not in its work tree). ``exposed``: uet's own directories (or existing
    files) the command must reach at their paths, hidden or not, read-write (e.g. the step's
    scratch dir holding a message file it names on the command line); a missing one is
    skipped. ``network_default``: the caller's default when the spec does not say. ``home``:
    the real home (default: the worker's). ``env``: the process's environment, whose programs
    installed in the home (PATH entries there, what the programs on PATH link to there, a
    venv's interpreter there: pyenv, uv, nvm, ~/.local/bin) are shown read-only, since the
    private home covers them.

    ``SandboxUnavailable`` when bwrap was asked for and cannot run; ``SandboxInvalid`` when a
    ``readable``/``writable`` path would show what must stay hidden."""
    network = network_default if spec.network is None else spec.network
    rlimits, cgroups, memory_bytes, pids_max, notes = _limits(spec.limits, spec.mode)

    def plan(
        prefix: list[str], env: dict[str, str], home: Path | None, tmp: Path | None
    ) -> SandboxPlan:
        return SandboxPlan(
            mode=spec.mode,
            prefix=tuple(prefix),
            env=env,
            limits=spec.limits,
            network=network,
            rlimits=rlimits,
            cgroups=cgroups,
            memory_bytes=memory_bytes,
            pids_max=pids_max,
            notes=notes,
            home=home,
            tmp=tmp,
        )

    if spec.mode == "none":
        return plan([], {}, None, None)

    binary = bwrap_binary()
    real_home = _real(home if home is not None else Path.home())
    checkout_r = _real(checkout)
    stores = [object_store] if isinstance(object_store, Path) else list(object_store)
    store_paths = _with_alternates([_real(p) for p in stores])
    private_home = scratch / "home"
    private_tmp = scratch / "tmp"
    private_home.mkdir(parents=True, exist_ok=True)
    private_tmp.mkdir(parents=True, exist_ok=True)
    # The home's path inside: the real one, unless that cannot be covered (``/``, missing).
    home_inside = real_home if real_home != "/" and os.path.isdir(real_home) else None
    home_in = home_inside or _real(private_home)

    hide = [_real(p) for p in (uet_home, *([user_tree] if user_tree else []), *hidden)]
    covered = ["/tmp", *([home_inside] if home_inside else [])]
    shown = [(p, False) for p in spec.readable] + [(p, True) for p in spec.writable]
    extra = _extra_paths(shown, real_home, hide, covered)
    if env is not None:
        listed = {p for p, _ in extra}
        extra += [
            (p, False)
            for p in _toolchain(env.get("PATH", ""), covered)
            if p not in listed and not any(_under(p, h) or _under(h, p) for h in hide)
        ]

    args: list[str] = [binary, *_NAMESPACES]
    if not network:
        args.append("--unshare-net")
    args += _BASE_MOUNTS
    # 2. Hidden: empty tmpfs (made read-only at the end, once the binds below are in place).
    tmpfs = _outermost(
        p
        for p in [*hide, _real(Path("/run")), _real(Path("/var/run"))]
        if os.path.isdir(p) and not _under_any(p, covered)
    )
    for path in tmpfs:
        args += ["--tmpfs", path]
    resolv = _real(Path("/etc/resolv.conf"))
    if _under_any(resolv, tmpfs) and os.path.exists(resolv):
        args += ["--ro-bind", resolv, resolv]
    # 3. Private /tmp and home, and what the tool needs in it.
    args += ["--bind", _real(private_tmp), "/tmp", "--bind", _real(private_home), home_in]
    for seed in seeds:
        args += _seed(seed, private_home, home_in, real_home)
    # 4. What the spec shows, shallow paths first so that a deeper one is not covered.
    for path, writable in sorted(extra, key=lambda pw: pw[0].count("/")):
        if writable:
            os.makedirs(path, exist_ok=True)
            args += ["--bind", path, path]
        else:
            args += ["--ro-bind-try", path, path]
    # 5. The object store read-only, the checkout read-write: on top of everything.
    for store in store_paths:
        args += ["--ro-bind", store, store]
    args += ["--bind", checkout_r, checkout_r]
    for path in _outermost(_real(p) for p in exposed):
        args += ["--bind-try", path, path]
    for path in tmpfs:
        args += ["--remount-ro", path]
    args += ["--chdir", checkout_r, "--"]
    return plan(args, {"HOME": home_in, "TMPDIR": "/tmp"}, private_home, private_tmp)


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _under_any(path: str, parents: Sequence[str]) -> bool:
    return any(_under(path, p) for p in parents)


def _outermost(paths: Iterable[str]) -> list[str]:
    """``paths`` without those inside another one of them."""
    found: list[str] = []
    for path in sorted(set(paths), key=len):
        if not _under_any(path, found):
            found.append(path)
    return found


def _extra_paths(
    shown: list[tuple[str, bool]], real_home: str, hide: list[str], covered: list[str]
) -> list[tuple[str, bool]]:
    extra = []
    for given, writable in shown:
        path = _real(given.replace("~", real_home, 1) if given.startswith("~") else given)
        bad = [h for h in hide if _under(path, h) or _under(h, path)]
        bad += [c for c in covered if _under(c, path)]
        if bad:
            raise ApplicationError(
                f"sandbox: {given!r} would show {bad[0]}, which a sandboxed process must not "
                "see: name a directory that neither contains it nor lies in it",
                type="SandboxInvalid",
                non_retryable=True,
            )
        extra.append((path, writable))
    return extra


#: _toolchain's answers, each with the :func:`_path_stamp` it was found under.
_TOOLCHAINS: dict[tuple[str, tuple[str, ...]], tuple[tuple[object, ...], list[str]]] = {}


def _toolchain(path_env: str, covered: list[str]) -> list[str]:
    """:func:`_find_toolchain`, found again only when a PATH directory changed: the scan reads
    every entry of each (pyenv's shims: hundreds), ~3 ms of the worker's event loop per step.
    A symlink added, removed or replaced changes its directory's mtime; a PATH entry that
    now resolves elsewhere, or a venv's pyvenv.cfg rewritten, changes the stamp too."""
    key = (path_env, tuple(covered))
    stamp = _path_stamp(path_env)
    known = _TOOLCHAINS.get(key)
    if known is not None and known[0] == stamp:
        return list(known[1])
    found = _find_toolchain(path_env, covered)
    if len(_TOOLCHAINS) >= 64:  # workspaces' own PATHs: a handful, not a leak
        _TOOLCHAINS.clear()
    _TOOLCHAINS[key] = (stamp, found)
    return list(found)


def _path_stamp(path_env: str) -> tuple[object, ...]:
    """What :func:`_find_toolchain` reads of each PATH entry, in brief: where it resolves to,
    and the mtimes of that directory and of the pyvenv.cfg beside it."""
    stamp: list[object] = []
    for entry in filter(None, path_env.split(os.pathsep)):
        entry_r = _real(entry)
        times: list[int | None] = []
        for path in (entry_r, os.path.join(os.path.dirname(entry_r), "pyvenv.cfg")):
            try:
                times.append(os.stat(path).st_mtime_ns)
            except OSError:
                times.append(None)
        stamp.append((entry_r, *times))
    return tuple(stamp)


def _find_toolchain(path_env: str, covered: list[str]) -> list[str]:
    """What the programs on ``path_env`` need of the places the sandbox covers with private
    ones (the home, ``/tmp``) to run: the PATH entries there (a venv's whole directory, for
    its site-packages), the directories that symlinks on PATH point to there, and the prefix
    of a venv's interpreter there (``home = …`` in its pyvenv.cfg)."""
    found: list[str] = []

    def add(path: str) -> None:
        if any(_under(path, c) and path != c for c in covered) and os.path.isdir(path):
            found.append(path)

    for entry in filter(None, path_env.split(os.pathsep)):
        entry_r = _real(entry)
        venv = os.path.dirname(entry_r)
        add(venv if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) else entry_r)
        venv_home = None
        with contextlib.suppress(OSError):
            for line in Path(entry_r).parent.joinpath("pyvenv.cfg").read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home":
                    venv_home = _real(value.strip())
        if venv_home is not None:
            add(os.path.dirname(venv_home))  # the interpreter's prefix: bin/, lib/
        if not _under_any(entry_r, covered) and venv_home is None:
            continue  # a system directory: nothing covered to follow
        with contextlib.suppress(OSError), os.scandir(entry_r) as names:
            for item in names:
                if item.is_symlink():
                    target = _real(item.path)
                    if _under_any(target, covered) and not _under(target, entry_r):
                        add(os.path.dirname(target))
    return _outermost(found)


def _with_alternates(stores: list[str]) -> list[str]:
    """The object stores and, transitively, the stores their ``info/alternates`` name."""
    found: list[str] = []
    todo = list(stores)
    while todo:
        store = todo.pop(0)
        if store in found or not os.path.isdir(store):
            continue
        found.append(store)
        with contextlib.suppress(OSError):
            for line in Path(store, "info", "alternates").read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    todo.append(_real(Path(store, line)))
    return found


def _seed(seed: Seed, private_home: Path, home_in: str, real_home: str) -> list[str]:
    source = _real(seed.source)
    if not os.path.exists(source):
        return []
    target = seed.target
    if target is None:
        target = (
            os.path.relpath(source, real_home)
            if _under(source, real_home) and source != real_home
            else os.path.basename(source)
        )
    if target.startswith("/") or ".." in Path(target).parts:
        raise ValueError(f"seed target {target!r} must be relative to the home")
    if not seed.copy:
        return ["--ro-bind", source, os.path.join(home_in, target)]
    dest = private_home / target
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, dest)
    return []


# --- limits --------------------------------------------------------------------------------


def _limits(
    limits: SandboxLimits, mode: SandboxMode
) -> tuple[tuple[Rlimit, ...], dict[str, CgroupPlace], int | None, int | None, tuple[str, ...]]:
    rlimits: list[Rlimit] = []
    cgroups: dict[str, CgroupPlace] = {}
    notes: list[str] = []
    if limits.cpu_s is not None:
        soft = max(1, math.ceil(limits.cpu_s))
        rlimits.append(Rlimit(resource.RLIMIT_CPU, soft, soft + CPU_GRACE_S))
    if limits.file_mb is not None:
        size = max(1, int(limits.file_mb * 2**20))
        rlimits.append(Rlimit(resource.RLIMIT_FSIZE, size, size))
    memory_bytes = int(limits.memory_mb * 2**20) if limits.memory_mb is not None else None
    pids_max = None
    if limits.pids is not None:
        pids_max = limits.pids + (BWRAP_PIDS if mode == "bwrap" else 0)
    places = cgroup_places() if memory_bytes is not None or pids_max is not None else {}
    if memory_bytes is not None:
        if "memory" in places:
            cgroups["memory"] = places["memory"]
        else:
            rlimits.append(Rlimit(resource.RLIMIT_AS, memory_bytes, memory_bytes))
            notes.append(
                "memory_mb: no writable memory cgroup here, so RLIMIT_AS per process (address "
                "space, not memory used; a failed allocation is not reported as limit_memory)"
            )
    if pids_max is not None:
        if "pids" in places:
            cgroups["pids"] = places["pids"]
        else:
            rlimits.append(Rlimit(resource.RLIMIT_NPROC, pids_max, pids_max))
            notes.append(
                "pids: no writable pids cgroup here, so RLIMIT_NPROC (counts all of the user's "
                "processes, and does not hold for root)"
            )
    return tuple(rlimits), cgroups, memory_bytes, pids_max, tuple(notes)


@functools.cache
def cgroup_places() -> dict[str, CgroupPlace]:
    """Where this worker can make per-process cgroups with the ``memory`` and ``pids``
    controllers (v1 first, else v2 with the controller enabled for children), found by
    making one. Cached per process."""
    places: dict[str, CgroupPlace] = {}
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return places
    v1_paths: dict[str, str] = {}
    v2_path = None
    for line in own:
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            v2_path = path
        for name in controllers.split(","):
            v1_paths[name] = path
    v2_mount = None
    for line in mounts:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point, fstype, options = fields[3], fields[4], tail[0], tail[2].split(",")
        if fstype == "cgroup2" and v2_mount is None:
            v2_mount = (root, point)
        if fstype != "cgroup":
            continue
        for controller in ("memory", "pids"):
            if controller in options and controller in v1_paths and controller not in places:
                parent = _inside(point, root, v1_paths[controller])
                if parent is not None and _can_make_child(parent):
                    places[controller] = CgroupPlace(1, parent)
    if v2_mount is not None and v2_path is not None:
        parent = _inside(v2_mount[1], v2_mount[0], v2_path)
        wanted = [c for c in ("memory", "pids") if c not in places]
        if parent is not None and wanted:
            enabled = _enable_v2(parent, wanted)
            if enabled and _can_make_child(parent):
                for controller in enabled:
                    places[controller] = CgroupPlace(2, parent)
    return places


def _inside(mount_point: str, mount_root: str, cgroup_path: str) -> Path | None:
    if not _under(cgroup_path, mount_root):
        return None
    relative = cgroup_path[len(mount_root.rstrip("/")) :].lstrip("/")
    return Path(mount_point, relative) if relative else Path(mount_point)


def _enable_v2(parent: Path, wanted: list[str]) -> list[str]:
    try:
        available = (parent / "cgroup.controllers").read_text().split()
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError:
        return []
    found = []
    for controller in wanted:
        if controller not in available:
            continue
        if controller not in enabled:
            try:
                (parent / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:  # processes in it (no internal processes), or not delegated
                continue
        found.append(controller)
    return found


def _can_make_child(parent: Path) -> bool:
    trial = parent / f"uet-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        trial.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        trial.rmdir()
    return True


_serial = itertools.count()
_swept: set[Path] = set()


@dataclass
class _Cgroup:
    path: Path
    version: Literal[1, 2]
    controllers: list[str]


def _make_cgroups(plan: SandboxPlan) -> list[_Cgroup]:
    name = f"uet-{os.getpid()}-{next(_serial)}-{uuid.uuid4().hex[:6]}"
    made: dict[Path, _Cgroup] = {}
    try:
        for controller, place in plan.cgroups.items():
            if place.parent not in _swept:
                _swept.add(place.parent)
                _sweep(place.parent)
            path = place.parent / name
            group = made.get(path)
            if group is None:
                path.mkdir()
                group = made[path] = _Cgroup(path, place.version, [])
            group.controllers.append(controller)
            _set_limit(group, controller, plan)
    except OSError as exc:
        for group in made.values():
            _remove_now(group.path)
        raise ApplicationError(
            f"sandbox: cannot make the process's cgroup ({exc})", type="SandboxUnavailable"
        ) from exc
    return list(made.values())


def _set_limit(group: _Cgroup, controller: str, plan: SandboxPlan) -> None:
    path = group.path
    if controller == "pids":
        (path / "pids.max").write_text(str(plan.pids_max))
        return
    limit = str(plan.memory_bytes)
    if group.version == 1:
        (path / "memory.limit_in_bytes").write_text(limit)
        # Swap counts too where the kernel accounts it (memsw >= limit, so after it).
        if (path / "memory.memsw.limit_in_bytes").exists():
            with contextlib.suppress(OSError):
                (path / "memory.memsw.limit_in_bytes").write_text(limit)
    else:
        (path / "memory.max").write_text(limit)
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (path / name).exists():
                with contextlib.suppress(OSError):
                    (path / name).write_text(value)


def _sweep(parent: Path) -> None:
    """Remove what crashed workers left: ``uet-<pid>-…`` cgroups whose worker is gone."""
    with contextlib.suppress(OSError):
        for child in parent.iterdir():
            parts = child.name.split("-")
            if len(parts) < 3 or parts[0] != "uet" or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or pid_exists(pid):
                continue
            _kill_members(child)
            _remove_now(child)


def _members(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_members(path: Path) -> None:
    kill = path / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
    for pid in _members(path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _remove_now(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _counter(path: Path, key: str) -> int:
    """``key``'s value in a flat-keyed cgroup file (``oom_kill 1``), 0 if absent."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value.strip() or 0)
    except (OSError, ValueError):
        pass
    return 0


class SandboxRun:
    """One process's sandbox resources: its cgroups, from start to ``finish``."""

    def __init__(self, plan: SandboxPlan, cgroups: list[_Cgroup]) -> None:
        self.plan = plan
        self.cgroups = cgroups
        self._procs_files = [str(g.path / "cgroup.procs") for g in cgroups]
        self.closed = False

    def needs_child_setup(self) -> bool:
        """The child must run :meth:`preexec` before exec (cgroups to join, rlimits to set)."""
        return bool(self._procs_files or self.plan.rlimits)

    def preexec(self) -> None:
        """In the child, before exec: join the cgroups, then take on the rlimits (bwrap and
        everything it starts inherit both)."""
        pid = str(os.getpid()).encode()
        for name in self._procs_files:
            fd = os.open(name, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        for limit in self.plan.rlimits:
            _, hard_now = resource.getrlimit(limit.resource)
            hard = limit.hard if hard_now == resource.RLIM_INFINITY else min(limit.hard, hard_now)
            resource.setrlimit(limit.resource, (min(limit.soft, hard), hard))

    def memory_hit(self) -> bool:
        for group in self.cgroups:
            if "memory" not in group.controllers:
                continue
            if group.version == 2:
                return _counter(group.path / "memory.events", "oom_kill") > 0
            oom_control = group.path / "memory.oom_control"
            if "oom_kill " in _read(oom_control):
                return _counter(oom_control, "oom_kill") > 0
            return _failcnt(group.path)  # kernels before 4.13 count no OOM kills
        return False

    def pids_hit(self) -> bool:
        return any(
            _counter(g.path / "pids.events", "max") > 0
            for g in self.cgroups
            if "pids" in g.controllers
        )

    def limit_hit(self, exit_code: int | None, timed_out: bool, tail: str) -> LimitName | None:
        """The limit a failed run went over, or None (a run that succeeded hit none that
        mattered). Evidence first: the signal that killed the command (SIGXCPU, SIGXFSZ; bwrap
        and shells report it as 128+N), the cgroup's OOM kills and refused forks; last, a
        write that failed with EFBIG (Python ignores SIGXFSZ)."""
        if exit_code == 0 and not timed_out:
            return None
        limits = self.plan.limits

        def died_of(sig: int) -> bool:
            return exit_code in (-sig, 128 + sig)

        if limits.cpu_s is not None and died_of(signal.SIGXCPU):
            return "cpu"
        if limits.file_mb is not None and died_of(signal.SIGXFSZ):
            return "file_size"
        if self.memory_hit():
            return "memory"
        if self.pids_hit():
            return "pids"
        if limits.file_mb is not None and os.strerror(errno.EFBIG) in tail:
            return "file_size"
        return None

    async def finish(self, exit_code: int | None, timed_out: bool, tail: str) -> LimitName | None:
        """Kill whatever is left in the cgroups, tell which limit was hit, remove them."""
        try:
            await self.kill()
            return self.limit_hit(exit_code, timed_out, tail)
        finally:
            await self.close()

    async def kill(self) -> None:
        """SIGKILL every process still in the cgroups (one that left the process group and the
        pid namespace cannot leave its cgroup), until they are empty."""
        for group in self.cgroups:
            for _ in range(100):
                if not _members(group.path):
                    break
                _kill_members(group.path)
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for group in self.cgroups:
            # An exited process leaves its cgroup when it is reaped: that may take a moment.
            for _ in range(100):
                if _remove_now(group.path):
                    break
                _kill_members(group.path)
                await asyncio.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _failcnt(path: Path) -> bool:
    try:
        return int(_read(path / "memory.failcnt").strip() or 0) > 0
    except ValueError:
        return False


def describe_limit(name: LimitName, limits: SandboxLimits) -> str:
    """``went over its memory limit (64 MB)``: for failure reasons."""
    what = {
        "memory": f"its memory limit ({limits.memory_mb:g} MB)" if limits.memory_mb else "",
        "pids": f"its process limit ({limits.pids} processes)" if limits.pids else "",
        "cpu": f"its CPU time limit ({limits.cpu_s:g} s per process)" if limits.cpu_s else "",
        "file_size": f"its file size limit ({limits.file_mb:g} MB)" if limits.file_mb else "",
    }[name]
    return f"went over {what or name + ' limit'}"
