"""advisor.secrets against the real tools: mkpasswd, ssh-keygen and age-keygen."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import yescrypt_verifies

from advisor import runner
from advisor.errors import AdvisorError, UsageError
from advisor.nixos.keys import (
    AgeKey,
    age_key_file,
    bech32_decode,
    bech32_encode,
    generate_age_key,
    generate_ssh_host_key,
    load_age_key,
    load_ssh_host_key,
)
from advisor.secrets import hash_password, write_secret_file


@pytest.fixture
def required_tools() -> None:
    """scripts/install-test-deps installs these; a missing one fails the test, never skips."""
    missing = [t for t in ("mkpasswd", "ssh-keygen", "age-keygen") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-test-deps")


needs_mkpasswd = needs_ssh_keygen = needs_age_keygen = pytest.mark.usefixtures("required_tools")

CANARY = "canary-Pa55w0rd-7f3e"


def tool(*argv: str) -> str:
    """Run a real tool (test-only inputs, no secrets in argv) and return its stdout."""
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test and restore it afterwards."""
    original = os.umask(0o022)
    os.umask(original)

    def set_umask(value: int) -> None:
        os.umask(value)

    try:
        yield set_umask
    finally:
        os.umask(original)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def exception_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: message, repr and printed traceback."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def fake_tool(folder: Path, name: str, script: str) -> Path:
    """Put an executable shell script called ``name`` in ``folder``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- passwords


verifies = yescrypt_verifies


@needs_mkpasswd
@pytest.mark.parametrize("password", ["hunter2", " spaces around ", "pässwörd€", "x" * 511])
def test_hash_password_is_yescrypt_and_verifies(password: str) -> None:
    hashed = hash_password(password)
    assert hashed.startswith("$y$")
    assert verifies(password, hashed)
    assert not verifies(password + "x", hashed)


@needs_mkpasswd
def test_hash_password_uses_a_random_salt() -> None:
    assert hash_password("hunter2") != hash_password("hunter2")


@pytest.mark.parametrize(
    "password",
    ["", f"{CANARY}\n", f"{CANARY}\nrest", f"{CANARY}\rrest", f"{CANARY}\0", CANARY * 30],
)
def test_hash_password_rejects_unusable_passwords(password: str) -> None:
    with pytest.raises(UsageError) as caught:
        hash_password(password)
    assert CANARY not in exception_text(caught.value)


def test_hash_password_without_mkpasswd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="whois") as caught:
        hash_password(CANARY)
    message = str(caught.value)
    assert "yescrypt" in message
    assert "mkpasswd" in message
    assert CANARY not in exception_text(caught.value)


def test_hash_password_passes_the_password_on_stdin_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args_file = tmp_path / "args"
    stdin_file = tmp_path / "stdin"
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "mkpasswd",
        f'printf "%s\\n" "$@" > {args_file}\n'
        f'IFS= read -r line; printf "%s" "$line" > {stdin_file}\n'
        "echo '$y$j9T$fakesalt$fakehash'",
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    assert hash_password(CANARY) == "$y$j9T$fakesalt$fakehash"
    assert args_file.read_text(encoding="utf-8").split() == ["--method=yescrypt", "--stdin"]
    assert stdin_file.read_text(encoding="utf-8") == CANARY


@pytest.mark.parametrize(
    ("script", "error"),
    [
        # A tool that echoes its input in an error message: the runner would quote it.
        ('IFS= read -r line; echo "bad input: $line" >&2; exit 1', AdvisorError),
        # A tool that "succeeds" but prints its input instead of a hash.
        ('IFS= read -r line; echo "$line"', AdvisorError),
        # An ordinary failure: the runner's error comes through unchanged.
        ("echo 'crypt: something broke' >&2; exit 2", runner.CommandError),
    ],
)
def test_hash_password_failures_never_show_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, error: type[Exception]
) -> None:
    fake_tool(tmp_path / "bin", "mkpasswd", script)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(error) as caught:
        hash_password(CANARY)
    assert CANARY not in exception_text(caught.value)


def test_hash_password_failure_keeps_the_tools_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path / "bin", "mkpasswd", "echo 'crypt: something broke' >&2; exit 2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(runner.CommandError, match="something broke"):
        hash_password(CANARY)


def test_hash_password_rejects_output_that_is_not_yescrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path / "bin", "mkpasswd", "echo '$6$salt$sha512crypt'")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(AdvisorError, match="did not produce a yescrypt hash"):
        hash_password(CANARY)


# ------------------------------------------------------------------------ SSH host keys


@needs_ssh_keygen
def test_ssh_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key = generate_ssh_host_key("initrd@host")
    assert key.public_line.startswith("ssh-ed25519 AAAA")
    assert key.public_line.endswith(" initrd@host")
    public_file = tmp_path / "ssh_host_ed25519_key.pub"
    public_file.write_text(key.public_line + "\n", encoding="utf-8")
    bits, fingerprint, comment, kind = tool("ssh-keygen", "-l", "-f", str(public_file)).split()
    assert (bits, fingerprint, comment, kind) == (
        "256",
        key.fingerprint,
        "initrd@host",
        "(ED25519)",
    )


@needs_ssh_keygen
def test_ssh_private_key_is_what_ssh_keygen_reads(tmp_path: Path) -> None:
    key = generate_ssh_host_key()
    assert key.private_openssh.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    private_file = tmp_path / "initrd" / "ssh_host_ed25519_key"
    write_secret_file(private_file, key.private_openssh)
    # ssh-keygen refuses a private key others can read, so this also checks the mode.
    derived = tool("ssh-keygen", "-y", "-f", str(private_file)).split()
    assert derived[:2] == key.public_line.split()[:2]


def test_ssh_host_key_without_comment() -> None:
    key = generate_ssh_host_key("")
    assert len(key.public_line.split()) == 2


def test_load_ssh_host_key_round_trips() -> None:
    key = generate_ssh_host_key()
    assert load_ssh_host_key(key.private_openssh) == key
    other = load_ssh_host_key(key.private_openssh, comment="boot")
    assert other.public_line.split()[:2] == key.public_line.split()[:2]
    assert other.public_line.endswith(" boot")
    assert other.fingerprint == key.fingerprint


def test_generated_ssh_keys_differ() -> None:
    assert generate_ssh_host_key().fingerprint != generate_ssh_host_key().fingerprint


@needs_ssh_keygen
def test_load_ssh_host_key_reads_ssh_keygen_output(tmp_path: Path) -> None:
    private_file = tmp_path / "key"
    tool("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "x", "-f", str(private_file))
    key = load_ssh_host_key(private_file.read_bytes(), comment="x")
    public_line = (tmp_path / "key.pub").read_text(encoding="utf-8").strip()
    assert key.public_line == public_line
    assert key.fingerprint == tool("ssh-keygen", "-l", "-f", str(private_file)).split()[1]


def _ecdsa_openssh() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a key\n", id="text"),
        pytest.param(generate_ssh_host_key().public_line.encode(), id="public-key"),
        pytest.param(_ecdsa_openssh(), id="ecdsa"),
    ],
)
def test_load_ssh_host_key_rejects_other_files(data: bytes) -> None:
    with pytest.raises(UsageError):
        load_ssh_host_key(data)


@needs_ssh_keygen
def test_load_ssh_host_key_rejects_an_encrypted_key(tmp_path: Path) -> None:
    private_file = tmp_path / "key"
    # A throwaway test passphrase; the advisor itself never puts one in argv.
    tool("ssh-keygen", "-q", "-t", "ed25519", "-N", "test-only", "-f", str(private_file))
    with pytest.raises(UsageError, match="unencrypted"):
        load_ssh_host_key(private_file.read_bytes())


@pytest.mark.parametrize("comment", ["two\nlines", "tab\there", "nul\0"])
def test_ssh_comment_must_be_one_printable_line(comment: str) -> None:
    with pytest.raises(UsageError):
        generate_ssh_host_key(comment)


# --------------------------------------------------------------------------- bech32


@pytest.mark.parametrize(
    ("text", "hrp", "payload"),
    [
        # BIP-173 valid bech32 test vectors.
        ("a12uel5l", "a", b""),
        ("A12UEL5L", "A", b""),
        (
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "abcdef",
            bytes.fromhex("00443214c74254b635cf84653a56d7c675be77df"),
        ),
    ],
)
def test_bech32_valid_vectors(text: str, hrp: str, payload: bytes) -> None:
    assert bech32_decode(text) == (hrp, payload)
    assert bech32_encode(hrp, payload) == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        # BIP-173 invalid vectors.
        "pzry9x0s0muk",  # no separator
        "1pzry9x0s0muk",  # empty hrp
        "x1b4n0q5v",  # invalid data character
        "li1dgmt3",  # checksum too short
        "A1G7SGD8",  # checksum calculated with an uppercase hrp
        "10a06t8",  # empty hrp
        "1qzzfhee",  # empty hrp
        "a12uEL5L",  # mixed case
        "a12uel5m",  # wrong checksum
        "\x201nwldj5",  # hrp character out of range
    ],
)
def test_bech32_invalid_vectors(text: str) -> None:
    with pytest.raises(ValueError):
        bech32_decode(text)


# --------------------------------------------------------------------------- age keys


def test_generated_age_key_shape() -> None:
    key = generate_age_key()
    assert key.secret.startswith("AGE-SECRET-KEY-1")
    assert key.secret == key.secret.upper()
    assert len(key.secret) == 74
    assert key.public.startswith("age1")
    assert len(key.public) == 62
    assert generate_age_key() != key


@needs_age_keygen
def test_age_keygen_derives_the_same_public_key(tmp_path: Path) -> None:
    key = generate_age_key()
    key_file = tmp_path / "sops" / "age" / "keys.txt"
    write_secret_file(key_file, age_key_file(key, datetime.now(UTC)).encode())
    assert tool("age-keygen", "-y", str(key_file)).strip() == key.public


@needs_age_keygen
def test_load_age_key_reads_age_keygen_output(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.txt"
    subprocess.run(["age-keygen", "-o", str(key_file)], capture_output=True, check=True, timeout=60)
    text = key_file.read_text(encoding="utf-8")
    key = load_age_key(text)
    assert f"# public key: {key.public}\n" in text
    assert f"\n{key.secret}\n" in text


def test_age_key_file_layout() -> None:
    key = AgeKey(secret="AGE-SECRET-KEY-1XYZ", public="age1xyz")
    created = datetime(2026, 11, 27, 21, 0, 0, 123456, tzinfo=UTC)
    assert age_key_file(key, created) == (
        "# created: 2026-11-27T21:00:00Z\n# public key: age1xyz\nAGE-SECRET-KEY-1XYZ\n"
    )
    elsewhere = datetime(2026, 11, 27, 22, 0, tzinfo=timezone(timedelta(hours=1)))
    assert age_key_file(key, elsewhere).startswith("# created: 2026-11-27T21:00:00Z\n")
    with pytest.raises(ValueError):
        age_key_file(key, datetime(2026, 11, 27, 21, 0))  # naive on purpose


def test_load_age_key_round_trips() -> None:
    key = generate_age_key()
    assert load_age_key(age_key_file(key, datetime.now(UTC))) == key
    assert load_age_key(key.secret) == key
    assert load_age_key(f"\r\n# a comment\r\n  {key.secret}  \r\n") == key


def _corrupt_last_character(secret: str) -> str:
    last = "Q" if secret[-1] != "Q" else "P"
    return secret[:-1] + last


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: "", id="empty"),
        pytest.param(lambda k: "# only a comment\n", id="no-key"),
        pytest.param(lambda k: _corrupt_last_character(k.secret), id="bad-checksum"),
        pytest.param(lambda k: k.secret[:20] + k.secret[21:], id="character-missing"),
        pytest.param(lambda k: k.secret.lower(), id="lowercase"),
        pytest.param(lambda k: k.secret[:30] + k.secret[30:].lower(), id="mixed-case"),
        pytest.param(lambda k: k.public, id="public-key"),
        pytest.param(lambda k: f"{k.secret}\n{k.secret}\n", id="two-keys"),
        pytest.param(
            lambda k: f"# public key: {generate_age_key().public}\n{k.secret}\n",
            id="wrong-public-comment",
        ),
        pytest.param(lambda k: bech32_encode("AGE-SECRET-KEY-", bytes(31)).upper(), id="short-key"),
    ],
)
def test_load_age_key_rejects_malformed_files(mangle: Callable[[AgeKey], str]) -> None:
    key = generate_age_key()
    with pytest.raises(UsageError) as caught:
        load_age_key(mangle(key))
    # The secret key (or most of it) must not be quoted back.
    assert key.secret[16:40] not in exception_text(caught.value).upper()


# ------------------------------------------------------------------------ writing files


def test_write_secret_file_is_0600_even_with_umask_0(
    tmp_path: Path, umask: Callable[[int], None]
) -> None:
    umask(0)
    path = tmp_path / "a" / "b" / "secret"
    write_secret_file(path, b"data")
    assert path.read_bytes() == b"data"
    assert mode(path) == 0o600
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700


def test_write_secret_file_with_a_restrictive_umask(
    tmp_path: Path, umask: Callable[[int], None]
) -> None:
    umask(0o277)
    path = tmp_path / "new" / "secret"
    write_secret_file(path, b"data")
    assert mode(path) == 0o600
    assert mode(tmp_path / "new") == 0o700


def test_write_secret_file_leaves_existing_parents_alone(
    tmp_path: Path, umask: Callable[[int], None]
) -> None:
    umask(0)
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    write_secret_file(existing / "new" / "secret", b"data")
    assert mode(existing) == 0o755
    assert mode(existing / "new") == 0o700


def test_write_secret_file_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"old contents, longer than the new ones")
    path.chmod(0o644)
    write_secret_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_write_secret_file_leaves_no_temporary_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.mkdir()  # a directory cannot be replaced by a file
    (target / "inside").write_bytes(b"")
    with pytest.raises(OSError):
        write_secret_file(target, b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_runner_redacts_a_secret_echoed_on_stderr() -> None:
    from advisor.runner import CommandError, run

    canary = "runner-canary-93a1"
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", "cat >&2; exit 3"], secret=canary)
    assert canary not in str(info.value)
    assert canary not in info.value.stderr
    assert "<redacted>" in str(info.value)


def test_read_secret_from_a_file(tmp_path: Path) -> None:
    from advisor.secrets import read_secret

    path = tmp_path / "pass"
    path.write_text("first line\nsecond\n")
    assert read_secret(path, "disk passphrase", option="--x", interactive=False) == "first line"
    with pytest.raises(UsageError, match="at least 20 characters"):
        read_secret(path, "disk passphrase", option="--x", interactive=False, minimum=20)
    path.write_text("")
    with pytest.raises(UsageError, match=r"--x .* is empty"):
        read_secret(path, "disk passphrase", option="--x", interactive=False)
    with pytest.raises(UsageError, match=r"no terminal .* give --x FILE"):
        read_secret(None, "disk passphrase", option="--x", interactive=False)


def test_a_byte_order_mark_is_not_part_of_a_secret(tmp_path: Path) -> None:
    from advisor.secrets import read_secret

    path = tmp_path / "pass"
    path.write_bytes("\ufeffcorrect horse\r\n".encode())  # as some Windows editors save it
    assert read_secret(path, "disk passphrase", option="--x", interactive=False) == "correct horse"


ANSWER_PROMPTS = Path(__file__).parent / "answer_prompts.py"
READ_TWO_SECRETS = """
from advisor.secrets import read_secret
from advisor.errors import UsageError
try:
    passphrase = read_secret(None, "disk passphrase", option="--p", interactive=True, minimum=8)
    password = read_secret(None, "user password", option="--q", interactive=True)
except UsageError as error:
    print("refused:", error)
else:
    print("read", len(passphrase), len(password))
"""


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        (["canary-pass-7f3e", "canary-pass-7f3e", "pw-canary-19", "pw-canary-19"], "read 16 12"),
        (["canary-pass-7f3e", "canary-pass-7f3x"], "refused: the two disk passphrases differ"),
        (["short", "short"], "refused: the disk passphrase must have at least 8"),
    ],
)
def test_secrets_are_asked_twice_at_a_terminal_and_not_echoed(
    tmp_path: Path, replies: list[str], expected: str
) -> None:
    prompts = ["Disk passphrase: ", "Disk passphrase again: "]
    prompts += ["User password: ", "User password again: "]
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(list(zip(prompts, replies, strict=False))))
    transcript = tmp_path / "transcript"
    subprocess.run(
        [sys.executable, ANSWER_PROMPTS, transcript, answers, "--",
         sys.executable, "-c", READ_TWO_SECRETS],
        check=True, timeout=60,
    )  # fmt: skip
    shown = transcript.read_text()
    assert expected in shown
    for reply in replies:
        assert reply not in shown  # the terminal's echo was off while each was typed
