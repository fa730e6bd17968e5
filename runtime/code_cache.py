"""uet's workflow modules, compiled once per process.

The workflow sandbox imports every workflow module afresh for each workflow run: that is how
it keeps one run's module state from another's. Where Python keeps no bytecode on disk
(``PYTHONDONTWRITEBYTECODE``, a read-only install, a container image built without it),
each of those imports compiled the source again — ~50 ms of CPU per child workflow on a
2-core VM, most of what a trivial workstream costs the worker (bench/floor.py). A code object
is immutable, so one compile serves every run; each sandbox still executes the module
afresh, so nothing is shared between runs but the compiled code.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Sequence
from types import CodeType, ModuleType

#: The packages whose modules the sandbox re-imports (schemas and activities pass through).
PACKAGES = ("workflows",)

_codes: dict[tuple[str, int, int], CodeType] = {}
_hits: dict[str, int] = {}  # module name → imports served from the cache
_lock = threading.Lock()


class _CachingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> CodeType | None:
        path = self.get_filename(fullname)
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)  # an edited file compiles again
        code = _codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is not None:
                with _lock:
                    _codes[key] = code
        else:
            with _lock:
                _hits[fullname] = _hits.get(fullname, 0) + 1
        return code


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is None or type(loader) is not importlib.machinery.SourceFileLoader:
            return spec
        spec.loader = _CachingLoader(loader.name, loader.path)
        return spec


def install() -> None:
    """Compile uet's workflow modules once in this process (idempotent)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def compiled() -> int:
    """How many modules' code is held (for tests)."""
    return len(_codes)


def hits(module: str) -> int:
    """How often ``module``'s import was served compiled already (for tests)."""
    return _hits.get(module, 0)
