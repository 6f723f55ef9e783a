"""ffmpeg: assemble a job's frames into a video, and count the frames of the result (ffmpeg exits 0 on gaps)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from renderd.infofiles.format import InfoFile, expand

CODECS: dict[str, list[str]] = {
    "mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
    "mov": ["-c:v", "prores_ks"],
    "mkv": ["-c:v", "ffv1"],
    "webm": ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32"],
    "gif": ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse"],
}
_PROGRESS_RE = re.compile(r"^frame=\s*(\d+)")


def video_command(frames_glob: str, fps: float, container: str, target: str) -> list[str]:
    """The ffmpeg command line that turns the frames matching `frames_glob` into `target`."""
    return ["ffmpeg", "-y", "-nostdin", "-v", "error", "-progress", "pipe:1", "-nostats",
            "-framerate", f"{fps:g}", "-pattern_type", "glob", "-i", frames_glob, *CODECS[container], target]


def count_frames(path: Path) -> int | None:
    """Frames in a video as ffprobe decodes them (None when ffprobe cannot read it)."""
    import subprocess  # here, so that planning can use video_command without pulling in process handling

    try:
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames", "-of", "json", str(path)],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )
        return int(json.loads(result.stdout)["streams"][0]["nb_read_frames"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, IndexError):
        return None


class FfmpegRunner:
    name = "ffmpeg"

    def __init__(self) -> None:
        self.total: int | None = None

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        self.total = info.extra.get("expect_frames")
        return [expand(info.argv, info.frames, None, places)]

    def progress(self, line: str) -> str | None:
        match = _PROGRESS_RE.match(line)
        if not match:
            return None
        return f"frame {match[1]}/{self.total}" if self.total else f"frame {match[1]}"

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        return []  # a video, not frames: `check` counts its frames

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        target = Path(places.get("spool", "."), expand(info.argv, info.frames, None, places)[-1])
        if not target.is_file() or target.stat().st_size == 0:
            return f"{target.name}: no video written"
        expected = info.extra.get("expect_frames")
        if isinstance(expected, int):
            found = count_frames(target)
            if found != expected:
                return f"{target.name}: {found} frames, expected {expected} (missing or unreadable frames)"
        return None
