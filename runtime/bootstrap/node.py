"""Node: the package manager (lockfile, ``packageManager``), a reproducible install into
``node_modules``, and the package's own test, lint and build scripts."""

from __future__ import annotations

import re

from runtime.bootstrap.model import Gate, Profile
from runtime.bootstrap.repo import RepoFiles

LANG = "node"
#: Lockfile → package manager, in the order one is preferred when several are tracked.
LOCKFILES: tuple[tuple[str, str], ...] = (
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
)
FROZEN = {
    "npm": "npm ci",
    "pnpm": "pnpm install --frozen-lockfile",
    "yarn": "yarn install --frozen-lockfile",
    "bun": "bun install --frozen-lockfile",
}
#: Scripts a lint gate runs, the first one the package has.
LINT_SCRIPTS = ("lint", "check:lint", "lint:check")
#: What `npm init` writes as the test script: not a test.
_PLACEHOLDER_TEST = re.compile(r"no test specified", re.IGNORECASE)


def detect(files: RepoFiles, profile: Profile) -> None:
    if not files.has("package.json"):
        return
    profile.language(LANG)
    package = files.json("package.json")
    if package is None:
        profile.undecided(
            LANG, f"package.json is {files.unreadable.pop('package.json', 'unreadable')}: no gates"
        )
        return
    name = package.get("name") or "(no name)"
    profile.found(LANG, f"the package `{name}`", "package.json")
    if package.get("workspaces"):
        profile.undecided(
            LANG,
            "a workspaces monorepo: the gates run the root package's scripts only",
            "package.json workspaces",
        )
    manager, lock = _manager(files, profile, package)
    run = {"npm": "npm run", "pnpm": "pnpm run", "yarn": "yarn run", "bun": "bun run"}[manager]

    if lock is not None:
        install = FROZEN[manager]
        if manager == "yarn" and _major(package.get("packageManager")) >= 2:
            install = "yarn install --immutable"
        profile.chose(LANG, f"setup `{install}`: installs exactly what {lock} pins", lock)
        key = [lock]
    else:
        install = f"{manager} install"
        why = "no lockfile is tracked, so the install is not reproducible"
        npmrc = files.text(".npmrc") if files.has(".npmrc") else None
        if npmrc and re.search(r"^\s*package-lock\s*=\s*false", npmrc, re.MULTILINE):
            profile.found(LANG, "the project keeps no lockfile (package-lock=false)", ".npmrc")
            why = "the project keeps no lockfile (.npmrc), so the install is not reproducible"
        profile.chose(LANG, f"setup `{install}`: {why}", "package.json")
        key = ["package.json"]
    profile.setup.append(install)
    profile.cache.append({"path": "node_modules", "key": key})
    profile.chose(LANG, f"cache node_modules, keyed by {', '.join(key)}")

    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
    assert isinstance(scripts, dict)
    if scripts:
        profile.found(LANG, f"scripts: {', '.join(scripts)}", "package.json scripts")
    before: list[str] = []
    lint = next((s for s in LINT_SCRIPTS if s in scripts), None)
    if lint:
        gate = Gate(f"{manager}-lint", "lint", f"{run} {lint}")
        profile.gate(gate, LANG, f"the package's `{lint}` script", "package.json scripts")
        before.append(gate.gate_id)
    else:
        profile.undecided(LANG, "no lint script (lint, check:lint): no lint gate")
    if "build" in scripts:
        gate = Gate(f"{manager}-build", "custom", f"{run} build", tuple(before))
        profile.gate(gate, LANG, "the package's `build` script", "package.json scripts")
        before.append(gate.gate_id)
    test = scripts.get("test")
    if isinstance(test, str) and test.strip() and not _PLACEHOLDER_TEST.search(test):
        command = "bun run test" if manager == "bun" else f"{manager} test"
        gate = Gate(f"{manager}-test", "unit", command, tuple(before))
        profile.gate(gate, LANG, f"the package's `test` script (`{test}`)", "package.json scripts")
    elif isinstance(test, str) and test.strip():
        profile.undecided(
            LANG, "the test script is npm's placeholder: no unit gate", "package.json"
        )
    else:
        profile.undecided(LANG, "no test script: no unit gate", "package.json")


def _manager(
    files: RepoFiles, profile: Profile, package: dict[str, object]
) -> tuple[str, str | None]:
    """The package manager and its lockfile (None: no lockfile is tracked)."""
    declared = package.get("packageManager")
    wanted = declared.split("@", 1)[0] if isinstance(declared, str) else None
    if wanted:
        profile.found(LANG, f"packageManager: {declared}", "package.json packageManager")
    locks = [(lock, manager) for lock, manager in LOCKFILES if files.has(lock)]
    for lock, manager in locks:
        profile.found(LANG, f"a {manager} lockfile", lock)
    if wanted in FROZEN:
        assert wanted is not None
        mine = next((lock for lock, manager in locks if manager == wanted), None)
        if locks and mine is None:
            profile.undecided(
                LANG,
                f"packageManager says {wanted} but the lockfile is {locks[0][0]}: using {wanted} "
                "without a lockfile",
                "package.json packageManager",
                locks[0][0],
            )
        profile.chose(LANG, f"{wanted}: the package's packageManager", "package.json")
        return wanted, mine
    if len({manager for _, manager in locks}) > 1:
        profile.undecided(
            LANG,
            f"lockfiles of several package managers ({', '.join(lock for lock, _ in locks)}): "
            f"using {locks[0][1]}; delete the others or set packageManager",
            *(lock for lock, _ in locks),
        )
    if locks:
        profile.chose(LANG, f"{locks[0][1]}: its lockfile {locks[0][0]}", locks[0][0])
        return locks[0][1], locks[0][0]
    profile.chose(LANG, "npm: no lockfile and no packageManager say otherwise")
    return "npm", None


def _major(declared: object) -> int:
    match = re.match(r"[a-z]+@(\d+)", declared) if isinstance(declared, str) else None
    return int(match.group(1)) if match else 0
