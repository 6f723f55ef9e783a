"""The farm's settings file, SPOOL/settings.yaml: hooks, output checks, mail, failure policy, node hours.

Pure: the spool reads the file, this module only parses and validates it. Every problem names the
key, so a hand edit that goes wrong is reported in one line and the farm carries on with the last
good settings.

    hooks: {pre: CMD, post: CMD, end: CMD, error: CMD}   # run for every job, before the job's own
    checks: {min_size: 20k, reject_black: true, reject_transparent: true}
    mail: {host: smtp.example.com, port: 25, from: renderd@example.com}
    failure: {blocklist_after: 3, max_failed_chunks: 3}
    node: {cpu_share: 0.5, min_available: 2G, quiet_for: 30}      # defaults for every node
    nodes:
      ws-anna: {hours: {mon-fri: "19:00-08:00", sat-sun: always}, hours_end: suspend}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from renderd.errors import InfoFileError
from renderd.hours import HoursError, WorkHours
from renderd.infofiles.format import KeyProblem, OutputChecks, load_mapping, parse_duration, parse_hooks, parse_size
from renderd.mail import MailSettings

HOURS_END = ("finish", "suspend")
_NODE_KEYS = {"hours", "hours_end", "cpu_share", "min_available", "quiet_for"}
_TOP_KEYS = {"hooks", "checks", "mail", "failure", "node", "nodes"}


@dataclass(frozen=True)
class FailurePolicy:
    blocklist_after: int = 3  # chunks of one job failed in a row on one node before it stops taking that job
    max_failed_chunks: int = 3  # chunks failed for good before the whole job is marked failed


@dataclass(frozen=True)
class NodeSettings:
    """How one node shares its workstation. None: not said (the daemon's options or defaults apply)."""

    hours: WorkHours | None = None
    hours_end: str | None = None  # finish the chunk in hand, or suspend it, when the hours end
    cpu_share: float | None = None  # step aside when other processes use more than this share of the CPUs
    min_available: int | None = None  # ... or available memory falls below this many bytes
    quiet_for: float | None = None  # seconds of quiet before a suspended render resumes


@dataclass(frozen=True)
class FarmSettings:
    hooks: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    checks: OutputChecks = OutputChecks()
    mail: MailSettings | None = None
    failure: FailurePolicy = FailurePolicy()
    node_defaults: NodeSettings = NodeSettings()
    nodes: dict[str, NodeSettings] = field(default_factory=dict)

    def node(self, name: str) -> NodeSettings:
        """One node's settings: its own section over the `node:` defaults."""
        own = self.nodes.get(name, NodeSettings())
        base = self.node_defaults
        return NodeSettings(*(
            mine if mine is not None else theirs
            for mine, theirs in zip(vars(own).values(), vars(base).values(), strict=True)
        ))


def parse_settings(text: str | bytes, source: str) -> FarmSettings:
    """Parse SPOOL/settings.yaml; raise InfoFileError naming `source` and the key."""
    try:
        data = load_mapping(text) if text.strip() else {}
    except Exception as error:  # noqa: BLE001 - any YAML or decoding problem is the file's fault
        raise InfoFileError(source, f"bad YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InfoFileError(source, "expected a mapping of keys (hooks:, mail:, ...)")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise InfoFileError(source, f"unknown setting (known: {', '.join(sorted(_TOP_KEYS))})", key=unknown[0])
    try:
        hooks = parse_hooks(data.get("hooks"), "hooks")
        checks = _checks(data.get("checks"))
        failure = _failure(data.get("failure"))
        node_defaults = _node(data.get("node"), "node")
        nodes = data.get("nodes") or {}
        if not isinstance(nodes, dict):
            raise KeyProblem("nodes", "must be a mapping of node names to their settings")
        per_node = {str(name): _node(value, f"nodes.{name}") for name, value in nodes.items()}
    except KeyProblem as problem:
        raise InfoFileError(source, problem.message, key=problem.key) from None
    mail = MailSettings.from_mapping(data["mail"], source) if data.get("mail") is not None else None
    return FarmSettings(hooks, checks, mail, failure, node_defaults, per_node)


def _checks(value: object) -> OutputChecks:
    try:
        return OutputChecks.parse(value)
    except ValueError as error:
        raise KeyProblem("checks", str(error)) from None


def _failure(value: object) -> FailurePolicy:
    if value is None:
        return FailurePolicy()
    if not isinstance(value, dict):
        raise KeyProblem("failure", "must be a mapping like {blocklist_after: 3, max_failed_chunks: 3}")
    numbers = {}
    for key in ("blocklist_after", "max_failed_chunks"):
        item = value.get(key, getattr(FailurePolicy, key))
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise KeyProblem(f"failure.{key}", f"must be a whole number 1 or more, got {item!r}")
        numbers[key] = item
    unknown = sorted(set(value) - set(numbers))
    if unknown:
        raise KeyProblem(f"failure.{unknown[0]}", "unknown (known: blocklist_after, max_failed_chunks)")
    return FailurePolicy(**numbers)


def _node(value: object, key: str) -> NodeSettings:
    if value is None:
        return NodeSettings()
    if not isinstance(value, dict):
        raise KeyProblem(key, "must be a mapping like {hours: '19:00-08:00', cpu_share: 0.5}")
    unknown = sorted(set(map(str, value)) - _NODE_KEYS)
    if unknown:
        raise KeyProblem(f"{key}.{unknown[0]}", f"unknown (known: {', '.join(sorted(_NODE_KEYS))})")
    found: dict[str, Any] = {}
    try:
        if value.get("hours") is not None:
            found["hours"] = WorkHours.parse(value["hours"])
    except HoursError as error:
        raise KeyProblem(f"{key}.hours", str(error)) from None
    if value.get("hours_end") is not None:
        if value["hours_end"] not in HOURS_END:
            raise KeyProblem(f"{key}.hours_end", f"must be finish or suspend, got {value['hours_end']!r}")
        found["hours_end"] = value["hours_end"]
    share = value.get("cpu_share")
    if share is not None:
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise KeyProblem(f"{key}.cpu_share", f"must be a share between 0 and 1 (0.5: half), got {share!r}")
        found["cpu_share"] = float(share)
    for name, parser in (("min_available", parse_size), ("quiet_for", parse_duration)):
        if value.get(name) is not None:
            try:
                found[name] = parser(value[name])
            except ValueError as error:
                raise KeyProblem(f"{key}.{name}", str(error)) from None
    return NodeSettings(**found)
