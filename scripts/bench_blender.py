"""Benchmark the farm's overhead on real Blender renders, and `render info` on a large .blend.

1. The Cycles fixture (40 frames of about 1.3 s) rendered three ways, one after the other:
   - `blender -b FILE -a` run directly, all 40 frames in one process;
   - the same chunks the farm runs (10 frames each, `-f a,b,...`), run directly one after another;
   - the farm: one idle renderd, `render add FILE` with 10-frame chunks, clock from `render add` to
     the last completion record.
   The farm's overhead per chunk is (farm - direct chunks) / chunks; the ratio is farm / direct -a.
   What keeping Blender warm would gain is (direct chunks - direct -a): one start-up per chunk.
2. `render info` on a .blend of 50 MB or more, made here by Blender (a dense mesh, saved uncompressed).

Prints a table; asserts nothing. Run: python scripts/bench_blender.py (about four minutes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "tests" / "fixtures" / "b34_cycles_bench.blend"
CHUNK = 10
FRAMES = 40
BIG_BLEND_SCRIPT = """
import bpy, sys
bpy.ops.mesh.primitive_grid_add(x_subdivisions=1100, y_subdivisions=1100, size=10)
bpy.context.preferences.filepaths.use_file_compression = False
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1], compress=False)
"""


def run(argv: list[str], **kwargs: object) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore
    return time.monotonic() - started


def farm(spool: Path, env: dict[str, str]) -> tuple[float, int]:
    daemon = subprocess.Popen([sys.executable, "-m", "renderd.daemon_cli", "--spool", str(spool), "--name", "bench",
                               "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (spool / "nodes" / "bench.yaml").exists():
            time.sleep(0.05)
        time.sleep(1.0)
        started = time.monotonic()
        add = [sys.executable, "-m", "render_tui.cli", "add", str(BENCH), "--spool", str(spool), "--chunk", str(CHUNK)]
        job = subprocess.run(add, check=True, capture_output=True, text=True, env=env).stdout.strip()
        chunks = FRAMES // CHUNK
        deadline = time.monotonic() + 900
        while len(list((spool / "done" / job).glob("*.yaml"))) < chunks:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("the farm did not finish the benchmark job")
            time.sleep(0.05)
        return time.monotonic() - started, chunks
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def main() -> int:
    if shutil.which("blender") is None:
        print("bench_blender: Blender is not installed (run scripts/setup)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-blender-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        direct_all = run(["blender", "-noaudio", "-b", str(BENCH), "-o", str(work / "all" / "f_####"), "-a"])
        direct_chunks = 0.0
        for start in range(1, FRAMES + 1, CHUNK):
            frames = ",".join(str(f) for f in range(start, start + CHUNK))
            direct_chunks += run(["blender", "-noaudio", "-b", str(BENCH), "-o", str(work / "chunks" / "f_####"),
                                  "-F", "PNG", "-f", frames])
        farm_total, chunks = farm(work / "spool", env)
        rows += [
            ("blender -b -a, 40 frames, one process", f"{direct_all:.1f} s"),
            (f"the farm's {chunks} chunks run directly", f"{direct_chunks:.1f} s"),
            ("the farm, 1 daemon, 10-frame chunks", f"{farm_total:.1f} s"),
            ("farm overhead per chunk beyond Blender", f"{(farm_total - direct_chunks) / chunks:.2f} s (goal < 0.3 s)"),
            ("farm / blender -a", f"{farm_total / direct_all:.3f}x (goal <= 1.15x)"),
            ("keeping Blender warm would save", f"{(direct_chunks - direct_all) / chunks:.2f} s per chunk (start-up)"),
        ]
        big = work / "big.blend"
        run(["blender", "-noaudio", "-b", "--factory-startup", "--python-expr", BIG_BLEND_SCRIPT, "--", str(big)])
        size = big.stat().st_size / 2**20
        timings = []
        for _ in range(3):
            timings.append(run([sys.executable, "-m", "render_tui.cli", "info", str(big), "--spool",
                                str(work / "spool")], env=env))
        python_start = run([sys.executable, "-c", "import renderd.blendfile, render_tui.cli"])
        rows.append((f"render info on a {size:.0f} MB .blend", f"{min(timings):.2f} s best of 3, "
                     f"of which {python_start:.2f} s is starting Python (goal < 0.5 s)"))
    width = max(len(name) for name, _ in rows)
    print(f"renderd Blender benchmark ({os.cpu_count()} cores, {BENCH.name})")
    for name, figure in rows:
        print(f"{name.ljust(width)}  {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
