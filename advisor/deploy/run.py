"""``advisor fleet deploy``: nixos-anywhere for each host of a fleet, a few at a time.

Each host's run is one nixos-anywhere command (:func:`host_command`) through the one
command runner (:func:`advisor.runner.run_logged`), its output in a log file of its own.
At most ``jobs`` hosts run at once; a host that fails does not stop the others, and the
result of every host (:class:`HostResult`) is reported at the end.

Secrets: the disk passphrase of each host is read before any host starts (a file's first
line, or a command's), written without a newline to a 0600 file in a 0700 temporary
folder, and named to nixos-anywhere by ``--disk-encryption-keys``, which copies it to
the target's ``/tmp`` for disko; the folder is removed when the run ends, however it
ends. The passphrase is never in an argument, a log or a message. The initrd's SSH host
key (for remote unlock) is made here too, into the files nixos-anywhere copies to the
target's ``/persist`` (``--extra-files``): it is never written beside the flake.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from advisor import runner
from advisor.deploy.export import DISKO_FILE
from advisor.deploy.fleet import FLAKE_FILE, HOSTS_FOLDER, MANIFEST_FILE, read_manifest
from advisor.deploy.inventory import Host, Inventory, Passphrase
from advisor.errors import UsageError
from advisor.files import make_private_dirs
from advisor.nixos.keys import generate_ssh_host_key
from advisor.nixos.write import INITRD_HOST_KEY
from advisor.secrets import MIN_PASSPHRASE, read_secret, write_secret_file

#: Where nixos-anywhere puts the passphrase on the target, for disko's create script to
#: read (the disko configuration names the same path).
REMOTE_KEY_FILE = "/tmp/secret.key"  # noqa: S108 (the target's, as disko.nix names it)
#: The environment variable that names the nixos-anywhere program (else ``PATH``'s).
PROGRAM_VARIABLE = "ADVISOR_NIXOS_ANYWHERE"
#: Hosts deployed at once unless ``--jobs`` says otherwise: each builds its closure and
#: copies it over the network.
DEFAULT_JOBS = 4
#: How nixos-anywhere writes a host's hardware configuration (after its kexec, before
#: the build), and the file the host's configuration.nix imports.
HARDWARE_BACKEND = "nixos-generate-config"
HARDWARE_FILE = "hardware-configuration.nix"


@dataclass(frozen=True)
class HostRun:
    """One host's nixos-anywhere command and where its output goes. ``argv`` names the
    passphrase's file, never the passphrase."""

    host: Host
    argv: tuple[str, ...]
    log: Path
    #: The initrd SSH host key's fingerprint, when the run makes one (remote unlock).
    initrd_key: str | None = None


@dataclass(frozen=True)
class HostResult:
    """How one host's run ended: ``ok``, ``failed`` (the command's exit status, or why it
    did not start, in ``detail``)."""

    host: str
    ok: bool
    seconds: float
    log: Path
    detail: str = ""
    initrd_key: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "status": "ok" if self.ok else "failed",
            "seconds": round(self.seconds, 1),
            "log": str(self.log),
            "detail": self.detail,
            "initrd_host_key_fingerprint": self.initrd_key,
        }


@dataclass(frozen=True)
class DeployRequest:
    """What ``fleet deploy`` was asked: the inventory (checked), the flake folder that
    ``advisor fleet`` wrote, the hosts (all when empty), at most ``jobs`` at once."""

    inventory: Inventory
    flake: Path
    hosts: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    log_dir: Path | None = None
    program: str | None = None


#: Called as each host starts and ends: the host, the event (``started``, ``ok`` or
#: ``failed``) and its result (``None`` at the start).
Progress = Callable[[str, str, HostResult | None], None]


def selected(request: DeployRequest) -> list[Host]:
    """The hosts to deploy, in the inventory's order; a :class:`UsageError` for a
    ``--host`` the inventory does not have, or a host the flake was not written for as
    the inventory has it now: disko erases the disks the flake names, so they must be
    the inventory's (and a fixed host id the one the pool is made under)."""
    wanted = {request.inventory.host(name).name for name in request.hosts}
    hosts = [h for h in request.inventory.hosts if not wanted or h.name in wanted]
    flake = request.flake
    again = f"run 'advisor fleet --inventory {request.inventory.path} --out {flake}' again"
    if not (flake / FLAKE_FILE).is_file() or not (flake / MANIFEST_FILE).is_file():
        raise UsageError(
            f"--flake {str(flake)!r} holds no {FLAKE_FILE} and {MANIFEST_FILE}: write them "
            f"first with 'advisor fleet --inventory {request.inventory.path} --out {flake}'"
        )
    written = read_manifest(flake)
    for host in hosts:
        identity = written.get(host.name)
        if identity is None or not (flake / HOSTS_FOLDER / host.name / DISKO_FILE).is_file():
            raise UsageError(f"--flake {str(flake)!r} has no host {host.name!r}: {again}")
        if identity.disks != host.disks:
            raise UsageError(
                f"host {host.name!r}: the flake was written for the disks "
                f"{', '.join(identity.disks)}, the inventory names {', '.join(host.disks)}: "
                f"{again}, so that the disks disko erases are the inventory's"
            )
        if host.fixed_host_id and identity.host_id != host.settings.host_id:
            raise UsageError(
                f"host {host.name!r}: the flake was written for host id {identity.host_id}, "
                f"the inventory fixes {host.settings.host_id}: {again}"
            )
    return hosts


def check_jobs(jobs: int) -> int:
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: give 1 or more")
    return jobs


def program(given: str | None, environ: Mapping[str, str], *, dry_run: bool) -> str:
    """The nixos-anywhere to run: ``given`` (``--nixos-anywhere``), else the one
    :data:`PROGRAM_VARIABLE` names, else ``nixos-anywhere`` on ``PATH``; a
    :class:`UsageError` when there is none (a dry run just names it)."""
    name = given or environ.get(PROGRAM_VARIABLE) or "nixos-anywhere"
    found = runner.which(name)
    if found is None and not dry_run:
        raise UsageError(
            f"{name}: not found. Install nixos-anywhere (nix shell nixpkgs#nixos-anywhere), "
            f"or give its path with --nixos-anywhere PATH or {PROGRAM_VARIABLE}"
        )
    return found or name


def default_log_dir(flake: Path, now: datetime) -> Path:
    """A new folder beside the flake's (``<flake>-logs/<UTC time>``): not inside it, where
    Nix would copy the logs into the store with the flake's source, and see that source
    change while hosts are being built."""
    folder = flake.absolute()
    return folder.parent / f"{folder.name}-logs" / now.strftime("%Y%m%d-%H%M%S")


def check_log_dir(log_dir: Path, flake: Path) -> Path:
    log_dir = log_dir.absolute()
    if log_dir == flake.absolute() or flake.absolute() in log_dir.parents:
        raise UsageError(
            f"--log-dir {str(log_dir)!r} is inside the flake: Nix copies the flake's folder "
            "to the store at every build, logs included; give a folder outside it"
        )
    return log_dir


def host_command(
    host: Host,
    flake: Path,
    nixos_anywhere: str,
    key_file: str,
    extra_files: str | None = None,
) -> tuple[str, ...]:
    """The nixos-anywhere command that installs ``host`` from the fleet's ``flake``:
    the passphrase in ``key_file`` goes to the target's :data:`REMOTE_KEY_FILE`; the
    hardware configuration is generated into the host's folder when it has none (a
    re-run keeps the one there); ``extra_files`` (a folder) is copied over the new
    system's root. The flake is given as ``path:``: Nix then reads the folder as it is,
    the hardware configuration nixos-anywhere has just written included, where a flake
    in a git work tree would see only the files git tracks (nix issue 7107)."""
    argv = [
        nixos_anywhere,
        "--flake",
        f"path:{flake.absolute()}#{host.name}",
        "--disk-encryption-keys",
        REMOTE_KEY_FILE,
        key_file,
    ]
    hardware = flake.absolute() / "hosts" / host.name / HARDWARE_FILE
    if not hardware.exists():
        argv += ["--generate-hardware-config", HARDWARE_BACKEND, str(hardware)]
    if extra_files is not None:
        argv += ["--extra-files", extra_files]
    if host.ssh_port is not None:
        argv += ["--ssh-port", str(host.ssh_port)]
    argv.append(host.target)
    return tuple(argv)


def dry_run_lines(request: DeployRequest, nixos_anywhere: str) -> list[str]:
    """The command of every selected host, as shell lines: the passphrase's file is
    shown as where the passphrase would come from (nothing is read)."""
    lines = []
    for host in selected(request):
        source = host.passphrase.describe() if host.passphrase else "no passphrase source"
        key = f"<passphrase of {host.name}: {source}>"
        extra = f"<initrd SSH host key of {host.name}>" if _remote_unlock(host) else None
        lines.append(f"# {host.name}: {host.target}")
        lines.append(shlex.join(host_command(host, request.flake, nixos_anywhere, key, extra)))
    return lines


def _remote_unlock(host: Host) -> bool:
    return host.settings.remote_unlock_keys is not None


def read_passphrase(host: Host) -> str:
    """``host``'s disk passphrase, from its file's or its command's first line; a
    :class:`UsageError` naming the host and the field when there is none or it is too
    short. The command's stdout is never quoted."""
    source = host.passphrase
    if source is None:
        raise UsageError(
            f"host {host.name!r}: passphrase_file or passphrase_command: missing: the disks "
            "are encrypted at deploy time with the passphrase (docs/fleet.md)"
        )
    if source.file is not None:
        return read_secret(
            source.file,
            "disk passphrase",
            option=f"host {host.name!r}: passphrase_file",
            interactive=False,
            minimum=MIN_PASSPHRASE,
        )
    return _command_passphrase(host, source)


def _command_passphrase(host: Host, source: Passphrase) -> str:
    where = f"host {host.name!r}: passphrase_command"
    try:
        result = runner.run(source.command, timeout=300)
    except runner.CommandError as error:
        raise UsageError(f"{where}: {error}") from None
    lines = result.stdout.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"{where}: printed nothing on its first line")
    if len(lines[0]) < MIN_PASSPHRASE:
        raise UsageError(f"{where}: the passphrase must have at least {MIN_PASSPHRASE} characters")
    return lines[0]


def prepare_runs(
    hosts: Sequence[Host], flake: Path, nixos_anywhere: str, log_dir: Path, work: Path
) -> list[HostRun]:
    """Each host's run, its secrets in the private folder ``work``: the passphrase file
    (no newline: the passphrase typed at boot is the file's whole content) and, for
    remote unlock, the files copied to the target. Every passphrase is read before any
    host starts, so a missing one stops nothing half-way."""
    runs = []
    for host in hosts:
        folder = work / host.name
        key_file = folder / "disk.key"
        write_secret_file(key_file, read_passphrase(host).encode())
        extra, fingerprint = None, None
        if _remote_unlock(host):
            extra, fingerprint = _extra_files(folder / "extra")
        argv = host_command(host, flake, nixos_anywhere, str(key_file), extra)
        runs.append(HostRun(host, argv, log_dir / f"{host.name}.log", fingerprint))
    return runs


def _extra_files(root: Path) -> tuple[str, str]:
    """A new initrd SSH host key at its place under ``root`` (the new system's ``/``), and
    its fingerprint. nixos-anywhere copies the tree with its modes (``tar -p``), the top
    folder's included, which becomes the target's root: so the root, /persist and
    /persist/etc are 0755 (the system's), the folders below them 0700 and the key 0600."""
    key = generate_ssh_host_key()
    path = root / INITRD_HOST_KEY.lstrip("/")
    folders = [root, *reversed(path.relative_to(root).parents[:-1])]
    for depth, folder in enumerate(folders):
        mode = 0o755 if depth <= _PUBLIC_DEPTH else 0o700
        absolute = root / folder if depth else root
        absolute.mkdir(mode=mode)
        absolute.chmod(mode)  # whatever the umask
    write_secret_file(path, key.private_openssh)
    return str(root), key.fingerprint


#: The folders of the extra files that are the system's own, by depth: /, /persist and
#: /persist/etc.
_PUBLIC_DEPTH = 2


@contextmanager
def work_folder() -> Iterator[Path]:
    """A private (0700) temporary folder for the run's secrets, removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="advisor-fleet-"))
    try:
        make_private_dirs(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_host(run: HostRun, progress: Progress, clock: Callable[[], float]) -> HostResult:
    """Run one host's command with its output in its log; its result. A command that
    cannot start is a failed host, not a stopped fleet."""
    host = run.host.name
    progress(host, "started", None)
    start = clock()
    header = (
        f"# advisor fleet deploy: {host} ({run.host.target}), "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}\n# {shlex.join(run.argv)}\n"
    )
    if run.initrd_key:
        header += f"# initrd SSH host key: {run.initrd_key}\n"
    descriptor = os.open(run.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as log:
        log.write(header)
    try:
        status = runner.run_logged(run.argv, run.log)
        detail = "" if status == 0 else f"exit status {status}"
    except runner.CommandError as error:
        status, detail = -1, str(error)
    result = HostResult(host, status == 0, clock() - start, run.log, detail, run.initrd_key)
    progress(host, "ok" if result.ok else "failed", result)
    return result


def deploy(
    runs: Sequence[HostRun],
    jobs: int,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
) -> list[HostResult]:
    """Run ``runs``, at most ``jobs`` at once, in their order; every result, in the same
    order. ``progress`` is called from the threads, one call at a time. Interrupted
    (Ctrl-C), no host that has not started starts; those running get the terminal's
    interrupt too, and are waited for."""
    lock = threading.Lock()

    def report(host: str, event: str, result: HostResult | None) -> None:
        with lock:
            progress(host, event, result)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fleet")
    try:
        futures = [pool.submit(run_host, run, report, clock) for run in runs]
        return [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def deploy_fleet(
    request: DeployRequest, nixos_anywhere: str, progress: Progress
) -> list[HostResult]:
    """Deploy the selected hosts of ``request`` with ``nixos_anywhere``: the log folder
    made, every passphrase read into the private work folder, then the runs, at most
    ``request.jobs`` at once; every host's result, in the inventory's order. The work
    folder, secrets and all, is removed at the end, however the run ends."""
    hosts = selected(request)
    log_dir = check_log_dir(
        request.log_dir or default_log_dir(request.flake, datetime.now(UTC)), request.flake
    )
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--log-dir {str(log_dir)!r} cannot be created: {error.strerror}"
        ) from None
    with work_folder() as work:
        runs = prepare_runs(hosts, request.flake, nixos_anywhere, log_dir, work)
        return deploy(runs, request.jobs, progress)
