"""The info-file format: what people write, what the farm writes, and the errors in between."""

from __future__ import annotations

import pytest

from renderd.errors import InfoFileError
from renderd.infofiles.format import (
    Attempt,
    Claim,
    FrameRange,
    InfoFile,
    Requirement,
    dump,
    expand,
    parse,
    parse_duration,
)
from renderd.planning import split_frames


def test_a_file_with_only_a_command_is_enough() -> None:
    info = parse("command: povray +Ispheres.pov +W640 +H480\n")
    assert info.argv == ["povray", "+Ispheres.pov", "+W640", "+H480"]
    assert (info.priority, info.status, info.attempts, info.max_attempts) == (50, "queued", 0, 3)
    assert info.frames is None and info.job is None


def test_string_commands_split_with_shell_rules_and_lists_stay_lists() -> None:
    assert parse("command: sh -c 'echo \"a b\"; exit 3'\n").argv == ["sh", "-c", 'echo "a b"; exit 3']
    assert parse("command: [blender, -b, 'my scene.blend', -f, 1]\n").argv == ["blender", "-b", "my scene.blend",
                                                                                 "-f", "1"]


def test_round_trip_keeps_every_key_including_unknown_ones() -> None:
    info = InfoFile(
        command=("blender", "-b", "a b.blend", "-s", "{start}", "-e", "{end}", "-a"),
        frames=FrameRange(11, 20),
        job="shot-7f3a",
        priority=70,
        requires=(Requirement.parse("blender>=3.4"),),
        attempts=1,
        timeout=5400.0,
        claim=Claim(node="n1", host="h", pid=12, claimed_at="2026-01-01T00:00:00.000Z",
                    heartbeat="2026-01-01T00:00:05.000Z", progress="frame 12"),
        history=(Attempt(node="n0", error="exit status 1", log="logs/x.log", at="2026-01-01T00:00:00.000Z"),),
        extra={"note": "client wants it by friday"},
    )
    text = dump(info)
    again = parse(text)
    assert again == info
    assert again.extra == {"note": "client wants it by friday"}
    assert "command: [blender, -b, a b.blend" in text  # words on one line, for people


@pytest.mark.parametrize(
    ("text", "frames"),
    [("7", FrameRange(7, 7)), ("1-10", FrameRange(1, 10)), ("10-29:2", FrameRange(10, 29, 2)),
     (" -5-5 ", FrameRange(-5, 5))],
)
def test_frames_forms(text: str, frames: FrameRange) -> None:
    assert FrameRange.parse(text) == frames
    assert FrameRange.parse(str(frames)) == frames


def test_frame_ranges_with_steps_count_rendered_frames() -> None:
    frames = FrameRange(10, 29, 2)
    assert frames.frames == [10, 12, 14, 16, 18, 20, 22, 24, 26, 28]
    assert frames.last == 28 and len(frames) == 10


@pytest.mark.parametrize("text", ["10-1", "1-10:0", "a-b", "1..10", ""])
def test_bad_frames_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        FrameRange.parse(text)


def test_placeholders_are_substituted_after_splitting() -> None:
    argv = parse("command: render.sh '{start} to {end}' {frames} --step {step}\nframes: 1-5:2\n").argv
    assert expand(argv, FrameRange(1, 5, 2)) == ["render.sh", "1 to 5", "1,3,5", "--step", "2"]
    assert expand(["x", "{frame}"], FrameRange(3, 4), frame=4) == ["x", "4"]


@pytest.mark.parametrize(
    ("text", "key", "line", "reason"),
    [
        ("priority: 5\n", "command", None, "missing"),
        ("command: x\npriority: high\n", "priority", 2, "whole number"),
        ("command: x\n\nframes: 9-1\n", "frames", 3, "before start frame"),
        ("command: x\nstatus: sleeping\n", "status", 2, "must be one of"),
        ("command: x\nmax_attempts: 0\n", "max_attempts", 2, "1 or more"),
        ("command: x\ntimeout: soon\n", "timeout", 2, "positive number"),
        ("command: [x, {a: 1}]\n", "command", 1, "only words"),
        ("command: 'a \"b'\n", "command", 1, "cannot split"),
        ("command: x {start}\n", "frames", None, "placeholders"),
        ("command: x\nrequires: [blender>=]\n", "requires", 2, "capability"),
    ],
)
def test_validation_errors_name_the_key_and_line(text: str, key: str, line: int | None, reason: str) -> None:
    with pytest.raises(InfoFileError) as caught:
        parse(text, "queue/x.yaml")
    error = caught.value
    assert (error.key, error.line) == (key, line)
    assert reason in str(error)
    assert str(error).startswith("queue/x.yaml")
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"   \n", "empty"), (b"\x00\x01\x02junk", "binary"), (b"\xff\xfe command", "not UTF-8"),
     (b"command: [unclosed\n", "bad YAML"), (b"- just\n- a list\n", "mapping"), (b"just words", "mapping")],
)
def test_malformed_files_get_one_line_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(InfoFileError) as caught:
        parse(data, "queue/bad.yaml")
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_yaml_errors_carry_the_line() -> None:
    with pytest.raises(InfoFileError) as caught:
        parse("command: x\npriority: [1\nstatus: queued\n", "q.yaml")
    assert caught.value.line is not None and caught.value.line >= 2


def test_requirements_compare_versions() -> None:
    caps = {"blender": "4.5.1", "povray": "3.7.0.10", "gpu": None}
    assert Requirement.parse("blender>=4.2").satisfied_by(caps)
    assert not Requirement.parse("blender<4").satisfied_by(caps)
    assert Requirement.parse("blender==4.5").satisfied_by(caps)
    assert Requirement.parse("gpu").satisfied_by(caps)
    assert not Requirement.parse("gpu>=1").satisfied_by(caps)
    assert not Requirement.parse("prman").satisfied_by(caps)


def test_durations() -> None:
    assert [parse_duration(v) for v in (90, "90", "90s", "15m", "2h", "1d")] == [90, 90, 90, 900, 7200, 86400]


def test_chunks_hold_n_rendered_frames_and_honour_the_step() -> None:
    assert split_frames(FrameRange(1, 35), 10) == [FrameRange(1, 10), FrameRange(11, 20), FrameRange(21, 30),
                                                  FrameRange(31, 35)]
    assert split_frames(FrameRange(10, 29, 2), 4) == [FrameRange(10, 16, 2), FrameRange(18, 24, 2),
                                                     FrameRange(26, 28, 2)]
    every = [f for chunk in split_frames(FrameRange(1, 1000, 3), 7) for f in chunk.frames]
    assert every == FrameRange(1, 1000, 3).frames


def test_hooks_checks_memory_outputs_and_after_round_trip_and_name_their_key_when_wrong() -> None:
    from renderd.infofiles.format import OutputChecks, dump, parse

    text = ("command: render {frame}\nframes: 1-3\nhooks: {pre: 'fetch --all', post: [check, '{frames}']}\n"
            "checks: {min_size: 20k, reject_black: true}\nmemory: 4G\nafter: [shot-1, shot-1-video]\n"
            "outputs: out/f_####.png\n")
    info = parse(text, "x.yaml")
    assert info.hooks == {"pre": "fetch --all", "post": ("check", "{frames}")}
    assert info.checks == OutputChecks(min_size=20 * 1024, reject_black=True)
    assert (info.memory, info.after, info.outputs) == (4 << 30, ("shot-1", "shot-1-video"), "out/f_####.png")
    assert parse(dump(info), "again.yaml") == info
    assert OutputChecks(reject_black=False).over(OutputChecks(min_size=5, reject_black=True)) == \
        OutputChecks(min_size=5, reject_black=False)
    for line, message in [
        ("hooks: {pri: x}", "x.yaml:2: hooks: unknown hook 'pri' (known: pre, post, end, error)"),
        ("hooks: {pre: 'a \"b'}", "x.yaml:2: hooks: pre: cannot split into arguments"),
        ("checks: {black: true}", "x.yaml:2: checks: unknown check 'black'"),
        ("checks: {reject_black: maybe}", "x.yaml:2: checks: reject_black must be true or false"),
        ("memory: lots", "x.yaml:2: memory: must be a size like 20000"),
        ("after: 3", "x.yaml:2: after: must be a job id, a step id, or a list of them"),
    ]:
        with pytest.raises(InfoFileError) as caught:
            parse(f"command: x\n{line}\n", "x.yaml")
        assert str(caught.value).startswith(message), str(caught.value)


def test_farm_settings_merge_node_sections_and_report_the_key_at_fault() -> None:
    from renderd.settings import FailurePolicy, parse_settings

    settings = parse_settings(
        "hooks: {end: notify}\nfailure: {max_failed_chunks: 5}\nnode: {cpu_share: 0.5, quiet_for: 1m}\n"
        "nodes:\n  ws-anna: {hours: {mon-fri: '19:00-08:00'}, hours_end: suspend, cpu_share: 0.3}\n", "s.yaml")
    assert settings.hooks == {"end": "notify"} and settings.failure == FailurePolicy(3, 5)
    anna, other = settings.node("ws-anna"), settings.node("ws-ben")
    assert (anna.cpu_share, anna.quiet_for, anna.hours_end) == (0.3, 60.0, "suspend")
    assert (other.cpu_share, other.hours) == (0.5, None)
    for text, message in [
        ("hook: {}", "s.yaml: hook: unknown setting"),
        ("failure: {blocklist_after: 0}", "s.yaml: failure.blocklist_after: must be a whole number 1 or more"),
        ("nodes: {a: {hours: '7pm'}}", "s.yaml: nodes.a.hours: work hours"),
        ("nodes: {a: {cpu_share: 2}}", "s.yaml: nodes.a.cpu_share: must be a share between 0 and 1"),
        ("node: {hours_end: never}", "s.yaml: node.hours_end: must be finish or suspend"),
        ("[1, 2]", "s.yaml: expected a mapping of keys"),
    ]:
        with pytest.raises(InfoFileError) as caught:
            parse_settings(text, "s.yaml")
        assert str(caught.value).startswith(message), str(caught.value)
