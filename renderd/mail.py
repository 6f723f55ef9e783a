"""Mail about jobs: settings from the farm settings file, the messages (pure), and sending them over SMTP.

Building a message does no I/O (only its Date header reads the clock), so the daemon can build one, log it,
and hand it to `send`, the only function here that talks to the network. `log_tail` is the one that reads files.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from renderd.errors import InfoFileError, RenderdError
from renderd.infofiles.format import parse_duration

SUBJECT_MAX = 150
# A failed job can have hundreds of failed chunks: details for the first few keep the mail readable.
DETAILED_FAILURES = 10
_KEYS = ("host", "port", "from", "starttls", "ssl", "user", "password", "password_file", "timeout")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class MailError(RenderdError):
    """A mail that could not be handed to the SMTP server; the message is one line."""


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    sender: str = "renderd@localhost"  # the From address
    starttls: bool = False
    ssl: bool = False  # SMTP over TLS (smtplib.SMTP_SSL)
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of logs and tracebacks
    timeout: float = 10.0

    @classmethod
    def from_mapping(cls, data: object, source: str) -> MailSettings:
        """Settings from the value of the `mail:` section of the settings file at `source`.

        Raises InfoFileError naming the key (`mail.port`) and the problem, in one line.
        A relative `password_file` is read from the settings file's folder.
        """
        if not isinstance(data, Mapping):
            kind = "nothing" if data is None else type(data).__name__
            raise InfoFileError(source, f"must be a mapping with at least host:, got {kind}", key="mail")
        for key in data:
            if key not in _KEYS:
                raise InfoFileError(source, f"unknown key (known: {', '.join(_KEYS)})", key=f"mail.{key}")

        host = _text(data, "host", source)
        if host is None or not host.strip() or any(c.isspace() for c in host.strip()):
            raise InfoFileError(source, f"must be a host name or address, got {data.get('host')!r}", key="mail.host")
        use_ssl = _flag(data, "ssl", source)
        starttls = _flag(data, "starttls", source)
        if use_ssl and starttls:
            raise InfoFileError(source, "cannot be used with mail.starttls (pick one)", key="mail.ssl")
        # SMTP over TLS has its own well-known port; plain and STARTTLS keep the dataclass default.
        port = _port(data.get("port"), source, default=465 if use_ssl else cls.port)

        sender = _text(data, "from", source)
        if sender is None:
            sender = cls.sender
        elif "@" not in parseaddr(sender)[1]:
            raise InfoFileError(source, f"must be a mail address like renderd@example.com, got {sender!r}",
                                key="mail.from")

        user = _text(data, "user", source)
        password = _text(data, "password", source)
        password_file = _text(data, "password_file", source)
        if password is not None and password_file is not None:
            raise InfoFileError(source, "cannot be used with mail.password (pick one)", key="mail.password_file")
        if password_file is not None:
            password = _read_password(password_file, source)
        if password is not None and not user:
            raise InfoFileError(source, "a password needs mail.user", key="mail.user")
        if user and password is None:
            raise InfoFileError(source, "needs mail.password or mail.password_file", key="mail.user")

        timeout = cls.timeout
        if data.get("timeout") is not None:
            try:
                timeout = parse_duration(data["timeout"])
            except ValueError as error:
                raise InfoFileError(source, str(error), key="mail.timeout") from None

        return cls(host=host.strip(), port=port, sender=sender, starttls=starttls, ssl=use_ssl,
                   user=user or None, password=password, timeout=timeout)


def _text(data: Mapping[object, object], key: str, source: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    # Only text: YAML turns an unquoted 0123 or 1.50 into a number, which would silently change a password.
    if not isinstance(value, str):
        raise InfoFileError(source, f"must be text (put it in quotes), got {type(value).__name__} {value!r}",
                            key=f"mail.{key}")
    text = value
    # Values end up in SMTP commands and headers, where a line break would start a new command or header.
    if "\n" in text or "\r" in text:
        raise InfoFileError(source, "must be one line", key=f"mail.{key}")
    return text


def _flag(data: Mapping[object, object], key: str, source: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InfoFileError(source, f"must be true or false, got {value!r}", key=f"mail.{key}")
    return value


def _port(value: object, source: str, default: int) -> int:
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= 65535:
        raise InfoFileError(source, f"must be a whole number 1-65535, got {value!r}", key="mail.port")
    return number


def _read_password(name: str, source: str) -> str:
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = Path(source).parent / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InfoFileError(source, f"no such file: {path}", key="mail.password_file") from None
    except UnicodeDecodeError:
        raise InfoFileError(source, f"not UTF-8 text: {path}", key="mail.password_file") from None
    except OSError as error:
        raise InfoFileError(source, f"cannot read {path}: {error.strerror or error}",
                            key="mail.password_file") from None
    # Editors add a final newline; it is never part of the password.
    password = text.rstrip("\r\n")
    if not password:
        raise InfoFileError(source, f"is empty: {path}", key="mail.password_file")
    if "\n" in password or "\r" in password:
        raise InfoFileError(source, f"must hold the password on one line: {path}", key="mail.password_file")
    return password


@dataclass(frozen=True)
class JobFacts:
    id: str
    source: str | None  # the .blend / scene / command the job renders
    scene: str | None
    frames: str  # e.g. "1-240"
    frame_count: int
    chunks: int
    submitted: str | None  # ISO time text
    seconds: float | None  # wall time from submission to the end
    output: str | None  # where the frames are (a folder or pattern)
    node_names: tuple[str, ...] = ()  # nodes that rendered it
    farm: str = ""  # the spool's path, so the reader knows which farm


@dataclass(frozen=True)
class ChunkFailure:
    chunk: str  # e.g. "shot-7f3a-c0003"
    frames: str | None
    node: str | None
    error: str  # one line why
    log: str | None  # log path
    log_tail: str  # the last lines of the log (see log_tail())


def finished_message(settings: MailSettings, to: str, job: JobFacts) -> EmailMessage:
    """The mail saying a job rendered all its frames."""
    subject = f"{job.id} finished: {_count(job.frame_count, 'frame')}"
    took = duration(job.seconds, short=True)
    if took:
        subject += f" in {took}"
    first = f"Job {job.id} finished: {_count(job.frame_count, 'frame')} ({job.frames})"
    first += f" in {duration(job.seconds)}." if took else "."
    body = "\n".join([first, "", *_facts(job), ""])
    return _message(settings, to, job.id, "finished", subject, body)


def failed_message(
    settings: MailSettings, to: str, job: JobFacts, failures: list[ChunkFailure], reason: str | None = None
) -> EmailMessage:
    """The mail saying a job failed (and why the farm gave up on it), each failed chunk's reason and log tail."""
    if failures:
        subject = f"{job.id} failed: {failures[0].chunk}: {_one_line(failures[0].error)}"
        if len(failures) > 1:
            subject += f" (+{len(failures) - 1} more)"
        first = f"Job {job.id} failed: {_count(len(failures), 'chunk')} of {job.chunks} could not be rendered."
    else:
        subject = f"{job.id} failed" + (f": {_one_line(reason)}" if reason else "")
        first = f"Job {job.id} failed."
    lines = [first, *([f"Why: {_one_line(reason)}."] if reason else []), "", *_facts(job)]
    for failure in failures[:DETAILED_FAILURES]:
        lines += ["", f"Chunk {failure.chunk}"]
        lines += _pairs([("Frames", failure.frames), ("Node", failure.node),
                         ("Reason", _one_line(failure.error)), ("Log", failure.log)], indent="  ")
        tail = _clean(failure.log_tail).strip("\n")
        lines.append("  Last lines of the log:")
        lines += ["    " + line for line in tail.split("\n")] if tail else ["    (nothing)"]
    rest = failures[DETAILED_FAILURES:]
    if rest:
        lines += ["", f"{_count(len(rest), 'more failed chunk')}:"]
        lines += [f"  {failure.chunk} on {failure.node or '?'}: {_one_line(failure.error)}" for failure in rest]
    lines.append("")
    return _message(settings, to, job.id, "failed", subject, "\n".join(lines))


def _facts(job: JobFacts) -> list[str]:
    took = duration(job.seconds)
    return _pairs([
        ("Job", job.id),
        ("Source", job.source),
        ("Scene", job.scene),
        ("Frames", f"{job.frames} ({_count(job.frame_count, 'frame')} in {_count(job.chunks, 'chunk')})"),
        ("Submitted", job.submitted),
        ("Time", took or None),
        ("Output", job.output),
        ("Nodes", ", ".join(job.node_names) or None),
        ("Farm", job.farm or None),
    ])


def _pairs(pairs: list[tuple[str, str | None]], indent: str = "") -> list[str]:
    # Unknown facts are left out rather than printed as "None".
    width = max(len(name) for name, _ in pairs) + 2
    return [f"{indent}{name + ':':<{width}}{_one_line(value)}" for name, value in pairs if value is not None]


def _message(settings: MailSettings, to: str, job_id: str, event: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = _shorten(f"[renderd] {subject}", SUBJECT_MAX)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="renderd")
    message["X-Renderd-Job"] = _one_line(job_id)
    message["X-Renderd-Event"] = event
    message.set_content(body)
    return message


def duration(seconds: float | None, short: bool = False) -> str:
    """`1h 02m 05s`, `2m 05s` or `42s`; with `short`, hours drop the seconds (`1h 02m`). "" when unknown."""
    if seconds is None or seconds < 0:  # a negative time is clock skew between nodes, not a fact
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m" if short else f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _one_line(text: str | None) -> str:
    return " ".join(_clean(text or "").split())


def _clean(text: str) -> str:
    # Logs carry terminal control bytes; keep tabs and line breaks, drop the rest.
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


def _shorten(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16384) -> str:
    """The last `lines` lines of a log, reading at most its last `max_bytes` bytes (logs can be huge).

    Never raises for an unreadable log: the text says why instead, since it goes into a mail as is.
    """
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, 2)
            start = max(0, size - max_bytes)
            log.seek(start)
            data = log.read(max_bytes)
    except FileNotFoundError:
        return f"(log not found: {path})"
    except OSError as error:
        return f"(log not readable: {path}: {error.strerror or error})"
    text = data.decode("utf-8", errors="replace")
    parts = text.split("\n")
    if start > 0 and len(parts) > 1:
        parts = parts[1:]  # the first line was cut by the byte limit
    if parts and parts[-1] == "":
        parts.pop()
    if not parts:
        return f"(log is empty: {path})"
    # Progress meters redraw one line with carriage returns; keep what a terminal would show last.
    shown = [_CONTROL.sub("", part.rstrip("\r").rsplit("\r", 1)[-1]) for part in parts[-lines:]]
    return "\n".join(shown)


def send(settings: MailSettings, message: EmailMessage) -> None:
    """Hand `message` to the SMTP server in `settings`; MailError (one line) when it was not accepted."""
    where = f"mail to {message['To'] or '?'} via {settings.host}:{settings.port}"
    try:
        if settings.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                   context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"{where}: {_reason(error, settings)}") from None
    try:
        if settings.starttls:
            client.starttls(context=ssl.create_default_context())
        if settings.user:
            client.login(settings.user, settings.password or "")
        refused = client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        _close(client)
        raise MailError(f"{where}: {_reason(error, settings)}") from None
    # The message was accepted: a failing QUIT must not make the caller think it was lost (and resend it).
    _close(client)
    if refused:
        names = ", ".join(f"{rcpt} ({code} {_smtp_text(text)})" for rcpt, (code, text) in refused.items())
        raise MailError(f"{where}: sent, but the server refused {names}")


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _reason(error: BaseException, settings: MailSettings) -> str:
    """Why, in words a person can act on, on one line."""
    if isinstance(error, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        # smtplib reports a read that timed out as SMTPServerDisconnected; the timeout is the real story.
        reason = f"no answer within {settings.timeout:g} s"
    elif isinstance(error, socket.gaierror):
        reason = f"unknown host ({error.strerror or error})"
    elif isinstance(error, ssl.SSLCertVerificationError):
        reason = f"TLS certificate not trusted: {error.verify_message or error}"
    elif isinstance(error, ssl.SSLError):
        reason = f"TLS failed: {error.reason or error}"
    elif isinstance(error, smtplib.SMTPNotSupportedError):
        reason = str(error).rstrip(".")  # "STARTTLS extension not supported by server"
    elif isinstance(error, smtplib.SMTPAuthenticationError):
        reason = f"login refused for user {settings.user}: {error.smtp_code} {_smtp_text(error.smtp_error)}"
    elif isinstance(error, smtplib.SMTPRecipientsRefused):
        reason = "recipient refused: " + ", ".join(
            f"{rcpt} ({code} {_smtp_text(text)})" for rcpt, (code, text) in error.recipients.items())
    elif isinstance(error, smtplib.SMTPSenderRefused):
        reason = f"sender {error.sender} refused: {error.smtp_code} {_smtp_text(error.smtp_error)}"
    elif isinstance(error, smtplib.SMTPResponseException):
        reason = f"server said {error.smtp_code} {_smtp_text(error.smtp_error)}"
    elif isinstance(error, smtplib.SMTPServerDisconnected):
        reason = f"server closed the connection ({error})" if str(error) else "server closed the connection"
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror[0].lower() + error.strerror[1:]
    else:
        reason = str(error) or type(error).__name__
    return _one_line(reason)


def _smtp_text(text: bytes | str) -> str:
    return _one_line(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text)
