"""Go, Rust, C and Make: toolchains that keep their caches outside the checkout, so they
need gates but no setup."""

from __future__ import annotations

import re

from runtime.bootstrap.model import Gate, Profile
from runtime.bootstrap.repo import RepoFiles

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?![=:])", re.MULTILINE)
_PHONY = re.compile(r"^\.PHONY\s*:(.*)$", re.MULTILINE)


def detect_go(files: RepoFiles, profile: Profile) -> None:
    if not files.has("go.mod"):
        return
    profile.language("go")
    text = files.text("go.mod") or ""
    module = re.search(r"^module\s+(\S+)", text, re.MULTILINE)
    version = re.search(r"^go\s+(\S+)", text, re.MULTILINE)
    profile.found(
        "go",
        f"the module {module.group(1) if module else '(unnamed)'}"
        + (f", go {version.group(1)}" if version else ""),
        "go.mod",
    )
    profile.chose(
        "go",
        "no setup or cache: Go keeps downloaded modules and builds outside the checkout "
        "(GOMODCACHE, GOCACHE), shared by every checkout",
    )
    profile.gate(
        Gate("go-vet", "lint", "go vet ./..."), "go", "every package of the module", "go.mod"
    )
    profile.gate(
        Gate("go-test", "unit", "go test ./...", ("go-vet",)),
        "go",
        "every package of the module",
        "go.mod",
    )
    golangci = files.first(".golangci.yml", ".golangci.yaml", ".golangci.toml", ".golangci.json")
    if golangci:
        profile.undecided(
            "go",
            "golangci-lint is configured but not a gate (the worker may not have it); add "
            "`golangci-lint run` if it does",
            golangci,
        )


def detect_rust(files: RepoFiles, profile: Profile) -> None:
    if not files.has("Cargo.toml"):
        return
    profile.language("rust")
    cargo = files.toml("Cargo.toml")
    if cargo is None:
        profile.undecided(
            "rust",
            f"Cargo.toml is {files.unreadable.pop('Cargo.toml', 'unreadable')}",
            "Cargo.toml",
        )
        cargo = {}
    package = cargo.get("package") if isinstance(cargo.get("package"), dict) else {}
    workspace = cargo.get("workspace") if isinstance(cargo.get("workspace"), dict) else None
    assert isinstance(package, dict)
    what = f"the crate `{package['name']}`" if package.get("name") else "a Cargo manifest"
    if workspace is not None:
        members = workspace.get("members") or []
        what += f", a workspace of {len(members)} member crates"
    profile.found("rust", what, "Cargo.toml")
    if files.has("Cargo.lock"):
        profile.found("rust", "Cargo.lock pins the dependencies", "Cargo.lock")
    every = " --workspace" if workspace is not None else ""
    why = "every crate of the workspace" if every else "the crate"
    profile.chose(
        "rust",
        "no setup or cache: cargo downloads into ~/.cargo, and target/ is built by the gates "
        "(a cache saved after setup would be empty)",
    )
    profile.gate(
        Gate("cargo-clippy", "lint", f"cargo clippy{every} -- -D warnings", timeout_s=1800),
        "rust",
        f"{why}, warnings as errors; 1800s for a cold build",
        "Cargo.toml",
    )
    profile.gate(
        Gate("cargo-test", "unit", f"cargo test{every}", ("cargo-clippy",), timeout_s=1800),
        "rust",
        f"{why}; 1800s for a cold build",
        "Cargo.toml",
    )


def detect_c(files: RepoFiles, profile: Profile) -> None:
    for language, patterns in (("c", ("*.c",)), ("c++", ("*.cpp", "*.cc", "*.cxx"))):
        sources = files.anywhere(*patterns)
        if sources:
            profile.language(language)
            profile.found(language, f"{len(sources)} source files", *sources[:3])
    for other in ("CMakeLists.txt", "meson.build", "configure.ac", "configure"):
        if files.has(other):
            profile.undecided(
                None,
                f"{other}: uet init does not set up this build system; write its configure "
                "step into workspace.setup",
                other,
            )


def detect_make(files: RepoFiles, profile: Profile) -> None:
    makefile = next((m for m in MAKEFILES if files.has(m)), None)
    if makefile is None:
        return
    profile.language("make")
    text = files.text(makefile) or ""
    targets = list(dict.fromkeys(_TARGET.findall(text)))
    for line in _PHONY.findall(text):
        targets += [t for t in line.split() if t not in targets]
    profile.found("make", f"targets: {', '.join(targets) or '(none found)'}", makefile)
    unit = next((t for t in ("test", "check") if t in targets), None)
    used: list[str] = []
    if "lint" in targets and not profile.has_gate("lint"):
        profile.gate(
            Gate("make-lint", "lint", "make lint"), "make", "the Makefile's lint target", makefile
        )
        used.append("lint")
    if unit and not profile.has_gate("unit"):
        profile.gate(
            Gate(f"make-{unit}", "unit", f"make {unit}", ("make-lint",) if used else ()),
            "make",
            f"the Makefile's {unit} target; no language gate runs the tests",
            makefile,
        )
        used.append(unit)
    unused = [t for t in ("test", "check", "lint") if t in targets and t not in used]
    if unused:
        profile.chose(
            "make",
            f"the Makefile's {', '.join(unused)} not used: the language gates run those checks",
            makefile,
        )
    if not profile.gates and targets:
        profile.gate(
            Gate("make-build", "custom", "make"),
            "make",
            "the Makefile's default target builds the project; it has no test or check target",
            makefile,
        )
        profile.undecided(
            "make", "no test command found (no test or check target): add a unit gate", makefile
        )
