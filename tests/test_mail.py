"""Mail: settings parsing, the messages, and sending them to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from renderd.errors import InfoFileError, RenderdError
from renderd.mail import (
    ChunkFailure,
    JobFacts,
    MailError,
    MailSettings,
    duration,
    failed_message,
    finished_message,
    log_tail,
    send,
)

SOURCE = "farm.yaml"


def free_port() -> int:
    # Controller needs a real port number up front: it connects to it to know the server is up.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Collector:
    """An aiosmtpd handler keeping every accepted message; refuses recipients in `refuse`."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


def start_server(**kwargs: Any) -> tuple[Controller, Collector]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, collector


@pytest.fixture
def server() -> Iterator[tuple[MailSettings, Collector]]:
    controller, collector = start_server()
    try:
        yield MailSettings(host="127.0.0.1", port=controller.port, sender="farm@studio.test", timeout=5), collector
    finally:
        controller.stop()


JOB = JobFacts(
    id="shot-7f3a",
    source="/mnt/share/shots/shot.blend",
    scene="Main",
    frames="1-240",
    frame_count=240,
    chunks=24,
    submitted="2024-05-01T10:00:00+02:00",
    seconds=3725.4,
    output="/mnt/share/output/shot-7f3a/",
    node_names=("ws-1", "ws-2"),
    farm="/mnt/farm",
)


# -- settings -------------------------------------------------------------------------------------


def test_settings_from_a_full_section() -> None:
    settings = MailSettings.from_mapping({
        "host": "smtp.studio.test", "port": 587, "from": "Render farm <farm@studio.test>", "starttls": True,
        "user": "farm", "password": "s3cret", "timeout": "30s",
    }, SOURCE)
    assert settings == MailSettings(host="smtp.studio.test", port=587, sender="Render farm <farm@studio.test>",
                                    starttls=True, user="farm", password="s3cret", timeout=30.0)
    assert "s3cret" not in repr(settings)


def test_settings_defaults_and_the_ssl_port() -> None:
    assert MailSettings.from_mapping({"host": "mail"}, SOURCE) == MailSettings(host="mail")
    assert MailSettings.from_mapping({"host": "mail", "ssl": True}, SOURCE).port == 465
    assert MailSettings.from_mapping({"host": "mail", "ssl": True, "port": "2465"}, SOURCE).port == 2465


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"host": "mail", "port": "abc"}, "mail.port", "mail.port: must be a whole number 1-65535, got 'abc'"),
    ({"host": "mail", "port": 70000}, "mail.port", "1-65535, got 70000"),
    ({"host": "mail", "port": True}, "mail.port", "got True"),
    ({"port": 25}, "mail.host", "must be a host name"),
    ({"host": ["a", "b"]}, "mail.host", "must be text"),
    ({"host": "smtp example"}, "mail.host", "must be a host name"),
    ({"host": "mail", "starttls": "yes"}, "mail.starttls", "must be true or false, got 'yes'"),
    ({"host": "mail", "starttls": True, "ssl": True}, "mail.ssl", "cannot be used with mail.starttls"),
    ({"host": "mail", "pasword": "x"}, "mail.pasword", "unknown key"),
    ({"host": "mail", "password": "x"}, "mail.user", "a password needs mail.user"),
    ({"host": "mail", "user": "farm"}, "mail.user", "needs mail.password"),
    ({"host": "mail", "user": "farm", "password": 1234}, "mail.password", "must be text (put it in quotes)"),
    ({"host": "mail", "timeout": -1}, "mail.timeout", "positive number"),
    ({"host": "mail", "timeout": "soon"}, "mail.timeout", "got 'soon'"),
    ({"host": "mail", "from": "nobody"}, "mail.from", "must be a mail address"),
    ({"host": "mail", "from": "a@b\nBcc: everyone@c"}, "mail.from", "must be one line"),
    (["host", "mail"], "mail", "must be a mapping"),
    (None, "mail", "got nothing"),
])
def test_bad_settings_name_the_key_in_one_line(data: object, key: str, words: str) -> None:
    with pytest.raises(InfoFileError) as caught:
        MailSettings.from_mapping(data, SOURCE)
    text = str(caught.value)
    assert caught.value.key == key
    assert text.startswith(f"{SOURCE}: {key}: ")
    assert words in text
    assert "\n" not in text


def test_password_file_is_read_beside_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mail").write_text("pa ss\n", encoding="utf-8")
    source = str(tmp_path / "settings.yaml")
    data = {"host": "mail", "user": "farm", "password_file": "secrets/mail"}
    assert MailSettings.from_mapping(data, source).password == "pa ss"

    absolute = {**data, "password_file": str(tmp_path / "secrets" / "mail")}
    assert MailSettings.from_mapping(absolute, SOURCE).password == "pa ss"


@pytest.mark.parametrize(("content", "words"), [
    (None, "no such file"),
    ("\n", "is empty"),
    ("one\ntwo\n", "on one line"),
])
def test_bad_password_file(tmp_path: Path, content: str | None, words: str) -> None:
    if content is not None:
        (tmp_path / "pw").write_text(content, encoding="utf-8")
    with pytest.raises(InfoFileError) as caught:
        MailSettings.from_mapping({"host": "mail", "user": "u", "password_file": "pw"}, str(tmp_path / "s.yaml"))
    assert caught.value.key == "mail.password_file"
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_password_and_password_file_together_are_refused() -> None:
    with pytest.raises(InfoFileError, match="pick one"):
        MailSettings.from_mapping({"host": "m", "user": "u", "password": "p", "password_file": "f"}, SOURCE)


# -- messages, sent to a real server -----------------------------------------------------------------


def test_finished_mail_arrives(server: tuple[MailSettings, Collector]) -> None:
    settings, collector = server
    send(settings, finished_message(settings, "lead@studio.test", JOB))

    [got] = collector.received
    assert got.mail_from == "farm@studio.test"
    assert got.rcpt_tos == ["lead@studio.test"]
    message = got.message
    assert message["From"] == "farm@studio.test"
    assert message["To"] == "lead@studio.test"
    assert message["Subject"] == "[renderd] shot-7f3a finished: 240 frames in 1h 02m"
    assert message["X-Renderd-Job"] == "shot-7f3a"
    assert message["X-Renderd-Event"] == "finished"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].endswith("@renderd>")
    body = message.get_content()
    assert "1-240 (240 frames in 24 chunks)" in body
    assert "Time:      1h 02m 05s" in body  # 3725.4 s, rounded
    assert "Output:    /mnt/share/output/shot-7f3a/" in body
    assert "Nodes:     ws-1, ws-2" in body
    assert "Scene:     Main" in body
    assert "Farm:      /mnt/farm" in body


def test_finished_mail_leaves_out_what_is_unknown() -> None:
    job = JobFacts(id="j1", source=None, scene=None, frames="1", frame_count=1, chunks=1, submitted=None,
                   seconds=None, output=None)
    message = finished_message(MailSettings(host="m"), "a@b.c", job)
    assert message["Subject"] == "[renderd] j1 finished: 1 frame"
    body = message.get_content()
    assert "None" not in body and "Output" not in body and "Time" not in body


def test_failed_mail_carries_the_chunk_reason_and_log_tail(server: tuple[MailSettings, Collector],
                                                             tmp_path: Path) -> None:
    settings, collector = server
    log = tmp_path / "shot-7f3a-c0003.1.ws-2.log"
    lines = [f"Fra:{n} Mem:12M | Rendering" for n in range(1, 200)]
    log.write_bytes(("\n".join(lines) + "\nError: out of memory \xff\x00\n").encode("latin-1"))
    failures = [
        ChunkFailure(chunk="shot-7f3a-c0003", frames="21-30", node="ws-2", error="exit status 137 (killed)",
                     log=str(log), log_tail=log_tail(log, lines=5)),
        ChunkFailure(chunk="shot-7f3a-c0007", frames="61-70", node="ws-1", error="timeout after 2h",
                     log=None, log_tail=log_tail(tmp_path / "gone.log")),
    ]
    send(settings, failed_message(settings, "lead@studio.test", JOB, failures))

    [got] = collector.received
    message = got.message
    assert message["Subject"] == "[renderd] shot-7f3a failed: shot-7f3a-c0003: exit status 137 (killed) (+1 more)"
    assert message["X-Renderd-Event"] == "failed"
    assert message["X-Renderd-Job"] == "shot-7f3a"
    body = message.get_content().replace("\r\n", "\n")
    assert "2 chunks of 24 could not be rendered" in body
    assert "Chunk shot-7f3a-c0003" in body
    assert "  Frames: 21-30" in body and "  Node:   ws-2" in body
    assert "  Reason: exit status 137 (killed)" in body
    assert f"  Log:    {log}" in body
    assert "    Fra:196 Mem:12M | Rendering" in body
    assert "    Error: out of memory \ufffd" in body  # the byte \xff is not UTF-8: replaced, never a crash
    assert "Fra:195 " not in body  # only the last 5 lines
    assert "\x00" not in body
    assert "Chunk shot-7f3a-c0007" in body and "timeout after 2h" in body
    assert f"(log not found: {tmp_path / 'gone.log'})" in body


def test_failed_subject_is_one_short_line() -> None:
    failure = ChunkFailure(chunk="c1", frames=None, node=None, error="boom\n" + "x" * 400, log=None, log_tail="")
    message = failed_message(MailSettings(host="m"), "a@b.c", JOB, [failure])
    subject = message["Subject"]
    assert len(subject) <= 150 and "\n" not in subject
    assert subject.startswith("[renderd] shot-7f3a failed: c1: boom xxx") and subject.endswith("…")
    assert "    (nothing)" in message.get_content()


def test_many_failures_are_listed_briefly() -> None:
    failures = [ChunkFailure(chunk=f"c{n:04d}", frames=None, node="ws", error=f"exit {n}", log=None,
                             log_tail="tail") for n in range(25)]
    body = failed_message(MailSettings(host="m"), "a@b.c", JOB, failures).get_content()
    assert body.count("Last lines of the log:") == 10
    assert "15 more failed chunks:" in body and "  c0024 on ws: exit 24" in body


# -- sending failures ---------------------------------------------------------------------------------


def test_nothing_listening_is_a_one_line_mail_error() -> None:
    # A bound socket that does not listen holds the port, so the connection is surely refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        settings = MailSettings(host="127.0.0.1", port=port, timeout=2)
        with pytest.raises(MailError) as caught:
            send(settings, finished_message(settings, "a@b.c", JOB))
    assert isinstance(caught.value, RenderdError)
    assert str(caught.value) == f"mail to a@b.c via 127.0.0.1:{port}: connection refused"


def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection in the kernel but never greets
        port = silent.getsockname()[1]
        settings = MailSettings(host="127.0.0.1", port=port, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(MailError, match=r"^mail to a@b\.c via 127\.0\.0\.1:\d+: no answer within 0\.3 s$"):
            send(settings, finished_message(settings, "a@b.c", JOB))
        assert time.monotonic() - started < 3


def test_refused_recipient(server: tuple[MailSettings, Collector]) -> None:
    settings, collector = server
    collector.refuse.add("nobody@studio.test")
    with pytest.raises(MailError) as caught:
        send(settings, finished_message(settings, "nobody@studio.test", JOB))
    assert "recipient refused: nobody@studio.test (550 5.1.1 no such mailbox here)" in str(caught.value)
    assert collector.received == []


def test_starttls_on_a_server_without_it(server: tuple[MailSettings, Collector]) -> None:
    settings, _ = server
    settings = MailSettings(host=settings.host, port=settings.port, starttls=True, timeout=5)
    with pytest.raises(MailError, match="STARTTLS extension not supported by server$"):
        send(settings, finished_message(settings, "a@b.c", JOB))


# -- TLS and login, with a certificate made for the test ------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"farm", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    # The client uses the system's trust store; point it at the test certificate alone.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certificate


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_starttls_then_login(trusted: tuple[Path, Path], password: str) -> None:
    # aiosmtpd offers AUTH only after STARTTLS, so a login that works proves the order.
    controller, collector = start_server(tls_context=server_context(trusted), authenticator=authenticator,
                                         auth_required=True)
    try:
        settings = MailSettings(host="127.0.0.1", port=controller.port, starttls=True, user="farm",
                                password=password, timeout=5)
        message = finished_message(settings, "a@b.c", JOB)
        if password == "wrong":
            with pytest.raises(MailError, match=r"login refused for user farm: 535 .*$") as caught:
                send(settings, message)
            assert "\n" not in str(caught.value) and "wrong" not in str(caught.value)
            assert collector.received == []
        else:
            send(settings, message)
            assert [got.rcpt_tos for got in collector.received] == [["a@b.c"]]
    finally:
        controller.stop()


def test_smtp_over_tls(trusted: tuple[Path, Path]) -> None:
    controller, collector = start_server(ssl_context=server_context(trusted))
    try:
        settings = MailSettings(host="127.0.0.1", port=controller.port, ssl=True, timeout=5)
        send(settings, finished_message(settings, "a@b.c", JOB))
        assert len(collector.received) == 1
    finally:
        controller.stop()


def test_untrusted_certificate_is_refused(certificate: tuple[Path, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    controller, collector = start_server(tls_context=server_context(certificate))
    try:
        settings = MailSettings(host="127.0.0.1", port=controller.port, starttls=True, timeout=5)
        with pytest.raises(MailError, match="TLS certificate not trusted: self.signed certificate"):
            send(settings, finished_message(settings, "a@b.c", JOB))
        assert collector.received == []
    finally:
        controller.stop()


# -- log tails and durations ------------------------------------------------------------------------------


def test_log_tail_of_a_missing_log(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "x.log") == f"(log not found: {tmp_path / 'x.log'})"


def test_log_tail_of_a_long_log_reads_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    log.write_text("".join(f"line {n}\n" for n in range(200_000)), encoding="utf-8")
    assert log_tail(log) == "\n".join(f"line {n}" for n in range(199_980, 200_000))
    assert log_tail(log, lines=3) == "line 199997\nline 199998\nline 199999"
    # The byte limit wins over the line count, and the line it cut in half is dropped.
    assert log_tail(log, lines=100, max_bytes=30) == "line 199998\nline 199999"


def test_log_tail_cleans_what_a_terminal_would_hide(tmp_path: Path) -> None:
    log = tmp_path / "odd.log"
    log.write_bytes(b"frame= 1\rframe= 2\rframe= 3\r\n\x1b[31mred\x1b[0m\nno newline at the end \xe9")
    assert log_tail(log) == "frame= 3\n[31mred[0m\nno newline at the end \ufffd"
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert log_tail(empty) == f"(log is empty: {empty})"
    assert log_tail(tmp_path).startswith(f"(log not readable: {tmp_path}: ")


@pytest.mark.parametrize(("seconds", "long", "short"), [
    (3725.4, "1h 02m 05s", "1h 02m"),
    (125, "2m 05s", "2m 05s"),
    (42, "42s", "42s"),
    (0.2, "0s", "0s"),
    (90000, "25h 00m 00s", "25h 00m"),
    (None, "", ""),
    (-5, "", ""),
])
def test_duration(seconds: float | None, long: str, short: str) -> None:
    assert duration(seconds) == long
    assert duration(seconds, short=True) == short
