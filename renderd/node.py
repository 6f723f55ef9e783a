"""What this machine is and can do: system figures from psutil, and which renderers it has."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from renderd.infofiles.spool import write_atomic

# program -> (arguments that print its version, pattern that finds the version in that output)
PROGRAMS: dict[str, tuple[list[str], str]] = {
    "blender": (["--version"], r"Blender\s+(\d+\.\d+(?:\.\d+)?)"),
    "povray": (["--version"], r"POV-Ray\s+(\d+\.\d+(?:\.\d+)*)"),
    "ffmpeg": (["-version"], r"ffmpeg version\s+n?(\d+(?:\.\d+)*)"),
    "python": (["--version"], r"Python\s+(\d+\.\d+(?:\.\d+)?)"),
    "prman": (["-version"], r"(\d+\.\d+(?:\.\d+)?)"),
}
EXECUTABLES = {"python": "python3"}


def parse_version(program: str, output: str) -> str | None:
    """The version number in a program's own version output (pure, so it is tested on captures)."""
    match = re.search(PROGRAMS[program][1], output)
    return match[1] if match else None


def _probe(program: str, path: str) -> str | None:
    args, _pattern = PROGRAMS[program]
    try:
        result = subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(program, result.stdout + result.stderr) or "unknown"


def _cache_file() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home) / "renderd" / "capabilities.json"


def detect_capabilities(tags: list[str] | None = None) -> dict[str, str | None]:
    """Renderers found on PATH with their versions, plus the node's tags (which have no version).

    Asking Blender its version takes a second or more, so answers are cached per executable
    (path, size and mtime) in the user's cache folder.
    """
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    found: dict[str, str | None] = {}
    to_probe: dict[str, tuple[str, str]] = {}
    for program in PROGRAMS:
        path = shutil.which(EXECUTABLES.get(program, program))
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"
        if isinstance(cache.get(key), str):
            found[program] = cache[key]
        else:
            to_probe[program] = (path, key)
    if to_probe:
        with ThreadPoolExecutor(max_workers=len(to_probe)) as pool:
            probed = pool.map(lambda program: _probe(program, to_probe[program][0]), list(to_probe))
            versions = dict(zip(to_probe, probed, strict=True))
        for program, version in versions.items():
            if version is not None:
                found[program] = version
                cache[to_probe[program][1]] = version
        with contextlib.suppress(OSError):
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache_path, json.dumps(cache, indent=1))
    for tag in tags or []:
        found.setdefault(tag.lower(), None)
    return dict(sorted(found.items()))


def system_figures() -> dict[str, object]:
    """CPU, load, memory and swap, as written into the node file."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_count": psutil.cpu_count() or 1,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load": load,
        "memory": {"total": memory.total, "available": memory.available, "used": memory.total - memory.available},
        "swap": {"total": swap.total, "used": swap.used},
    }

