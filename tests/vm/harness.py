"""Run shell scripts as root on a real kernel with dm-crypt and OpenZFS, in a throw-away VM.

The host's own kernel has neither device-mapper nor ZFS, so the tests boot Debian's kernel (with
the ZFS module DKMS built for it) under QEMU with virtme-ng (``vng``). The guest runs the *host's*
userland: the root file system is the host's, shared read-only over 9p, with writable overlays on
/etc, /tmp, /var and a few more (changes stay in the guest). So the project's virtualenv,
cryptsetup, zpool and sgdisk run unchanged in the guest, against real virtio disks. Install the
prerequisites with ``scripts/install-vm-deps``.

Pure emulation (QEMU TCG) is used: hardware virtualisation is not available on the machines this
runs on. A boot plus a trivial command takes 30-40 s on an idle 2-core machine (60 s and more on
a busy one), most of it udev's coldplug; Python in the guest is slow too (``import pyudev``: 9 s).
So put as much as possible in one script.

Typical use::

    disks = [create_disk(tmp_path / "a.img", "2G", serial="disk01")]
    result = run_in_vm('zpool create ...; echo "@@RESULT pool=ok"', disks,
                       rwdir=tmp_path / "rw", timeout=600).check()
    assert result.results["pool"] == "ok"

In the guest the script runs as root under ``bash`` with ``set -e``, in ``$RWDIR`` (the host
folder ``rwdir``, shared read-write at the same path), after ``modprobe dm_crypt zfs`` and
``udevadm settle``. It sees:

- ``$RWDIR``: the shared folder; files written there are on the host afterwards;
- ``$PYTHON``: the host interpreter running the tests (the project's virtualenv), which works in
  the guest because the host's root file system is the guest's;
- ``result KEY VALUE``: a shell function printing the marker line ``@@RESULT KEY=VALUE`` that
  :attr:`VmResult.results` collects;
- disks as ``/dev/vda``, ``/dev/vdb``, ... in the order given, with
  ``/dev/disk/by-id/virtio-<serial>`` for those that have a serial (and no by-id link at all
  for those that do not, as on a libvirt guest whose disks have no serial);
- a writable /etc that starts as the host's (a guest-only overlay, which vng sets up): the
  host's own /etc/hostid shows through, so ``zgenhostid`` needs ``-f`` to replace it, and
  whatever the script writes to /etc is gone at power-off. No EFI (/sys/firmware/efi is absent).

The harness keeps its own files in ``rwdir/.vm`` (emptied at each run), so two VMs must not
share an rwdir at the same time; one after the other (e.g. install, then check) is fine.

With ``tpm=FOLDER`` the guest also gets a TPM 2.0: a software TPM (swtpm) run on the host for the
length of the VM, keeping its state in FOLDER, attached through QEMU's TPM emulator backend as a
TIS device (Debian's kernel has the TIS driver built in: ``/dev/tpm0`` and ``/dev/tpmrm0``). The
same folder on the next run is the same chip after a reboot: what was written to its NV or
sealed to it is still there, the PCRs start again from zero.

This module does not depend on pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Bound on one VM run, boot included, for the tests (``$VM_TIMEOUT`` seconds overrides it).
#: A boot takes 30-70 s under emulation on 2 cores and the LUKS + ZFS smoke test about 60 s in
#: all; this leaves room for a loaded machine while still ending a hung guest.
VM_TIMEOUT = float(os.environ.get("VM_TIMEOUT", "900"))

INSTALL_HINT = "run scripts/install-vm-deps (as root) to install QEMU, a kernel with ZFS and vng"

#: Seconds swtpm gets to create its control socket before the run gives up.
SWTPM_START_TIMEOUT = 30.0

# A Unix socket's path is at most 107 bytes (sun_path is 108, with the NUL).
_SUN_PATH_MAX = 107

#: Marker prefix of the lines :attr:`VmResult.results` collects from the guest's stdout.
RESULT_MARKER = "@@RESULT "

#: Modules a udev coldplug would load under emulation for nothing: KVM in a TCG guest takes
#: seconds to load and is of no use.
_BLACKLIST = ("kvm", "kvm_amd", "kvm_intel")

# vng hands paths to a shell unquoted (--rwdir) and to the kernel command line; keep them plain.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@:-]+")
# QEMU: a virtio-blk serial is at most 20 bytes; keep it to what udev copies into the link name.
_SAFE_SERIAL = re.compile(r"[A-Za-z0-9._-]{1,20}")
_SIZE = re.compile(r"(\d+)([KMGT]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class VmUnavailable(RuntimeError):
    """The VM cannot be started here: no kernel with ZFS, or no ``vng``/QEMU/swtpm."""


class VmError(RuntimeError):
    """The VM was started but the script did not run to its end (boot failure, guest setup)."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr

    def __str__(self) -> str:
        return _with_output(super().__str__(), self.stdout, self.stderr)


class VmTimeout(VmError):
    """The VM did not power off within the timeout (it was killed)."""


class VmScriptError(AssertionError):
    """The script exited with a non-zero status (raised by :meth:`VmResult.check`)."""


@dataclass(frozen=True)
class Disk:
    """A raw disk image attached to the guest as a virtio-blk device."""

    path: Path
    serial: str | None
    size: int  # bytes

    def __post_init__(self) -> None:
        if self.serial is not None and not _SAFE_SERIAL.fullmatch(self.serial):
            raise ValueError(f"disk serial {self.serial!r}: use 1-20 of [A-Za-z0-9._-]")

    @property
    def by_id(self) -> str | None:
        """The guest's ``/dev/disk/by-id`` link for this disk (None without a serial)."""
        return None if self.serial is None else f"/dev/disk/by-id/virtio-{self.serial}"


def parse_size(size: int | str) -> int:
    """Bytes in ``size``: an int, or a string such as ``"512M"`` or ``"4G"`` (powers of 1024)."""
    if isinstance(size, int):
        value = size
    else:
        m = _SIZE.fullmatch(size.strip())
        if m is None:
            raise ValueError(f"disk size {size!r}: expected bytes or e.g. '512M', '4G'")
        value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value <= 0:
        raise ValueError(f"disk size {size!r} must be positive")
    return value


def create_disk(path: Path, size: int | str, *, serial: str | None = None) -> Disk:
    """Create (or truncate to ``size``) a sparse raw image at ``path`` and describe it."""
    nbytes = parse_size(size)
    disk = Disk(Path(path).absolute(), serial, nbytes)
    disk.path.parent.mkdir(parents=True, exist_ok=True)
    with disk.path.open("wb") as f:
        f.truncate(nbytes)
    return disk


MakeDisk = Callable[..., Disk]
"""The type of a factory making disk images, such as the ``make_disk`` test fixture."""


@dataclass(frozen=True)
class VmResult:
    """What a script run in the guest left behind."""

    returncode: int
    stdout: str
    stderr: str
    duration: float  # seconds, host wall clock, boot and power-off included
    argv: list[str] = field(repr=False)

    @property
    def results(self) -> dict[str, str]:
        """``KEY=VALUE`` from the ``@@RESULT KEY=VALUE`` lines of stdout (the last one wins)."""
        found: dict[str, str] = {}
        for line in self.stdout.splitlines():
            if line.startswith(RESULT_MARKER):
                key, sep, value = line[len(RESULT_MARKER) :].partition("=")
                if sep:
                    found[key.strip()] = value.rstrip("\r")
        return found

    def check(self) -> VmResult:
        """Return self if the script succeeded; raise :class:`VmScriptError` with its output."""
        if self.returncode != 0:
            raise VmScriptError(self.describe())
        return self

    def describe(self) -> str:
        """Exit status and output, for assertion messages."""
        return _with_output(
            f"guest script exited with status {self.returncode} after {self.duration:.0f}s",
            self.stdout,
            self.stderr,
        )


def _with_output(message: str, stdout: str, stderr: str) -> str:
    parts = [message]
    if stdout:
        parts.append(f"--- stdout ---\n{stdout.rstrip()}")
    if stderr:
        parts.append(f"--- stderr ---\n{stderr.rstrip()}")
    return "\n".join(parts)


def _version_key(version: str) -> list[tuple[int, int | str]]:
    """Natural sort key: ``6.1.0-10`` sorts after ``6.1.0-9``."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[^\d.+~-]+", version)]


def zfs_module(version: str, modules_dir: Path = Path("/lib/modules")) -> Path | None:
    """The DKMS-built ZFS module for kernel ``version``, if there is one."""
    dkms = modules_dir / version / "updates" / "dkms"
    for name in ("zfs.ko", "zfs.ko.xz", "zfs.ko.zst", "zfs.ko.gz"):
        if (dkms / name).is_file():
            return dkms / name
    return None


def find_kernel(boot_dir: Path = Path("/boot"), modules_dir: Path = Path("/lib/modules")) -> Path:
    """The newest ``vmlinuz-<version>`` in ``boot_dir`` with a DKMS ZFS module for it.

    ``$VM_KERNEL`` overrides the choice (a path to a kernel image whose modules have ZFS).
    """
    override = os.environ.get("VM_KERNEL")
    if override:
        kernel = Path(override)
        if not kernel.is_file():
            raise VmUnavailable(f"VM_KERNEL={override}: no such kernel image")
        return kernel
    candidates = sorted(
        (p for p in boot_dir.glob("vmlinuz-*") if p.is_file()),
        key=lambda p: _version_key(p.name.removeprefix("vmlinuz-")),
        reverse=True,
    )
    for kernel in candidates:
        if zfs_module(kernel.name.removeprefix("vmlinuz-"), modules_dir) is not None:
            if not os.access(kernel, os.R_OK):
                raise VmUnavailable(
                    f"{kernel} is not readable by this user; run the VM tests as root"
                )
            return kernel
    found = ", ".join(p.name for p in candidates) or "none"
    raise VmUnavailable(
        f"no kernel in {boot_dir} has a ZFS module in {modules_dir}/<version>/updates/dkms "
        f"(kernels found: {found}); {INSTALL_HINT}"
    )


def find_vng() -> Path:
    """The ``vng`` command: ``$VNG``, else on PATH, else next to this or the base interpreter."""
    override = os.environ.get("VNG")
    if override:
        if not os.access(override, os.X_OK):
            raise VmUnavailable(f"VNG={override} is not an executable; {INSTALL_HINT}")
        return Path(override)
    found = shutil.which("vng")
    if found:
        return Path(found)
    for folder in (Path(sys.executable).parent, Path(sys.base_prefix) / "bin"):
        if (folder / "vng").is_file():
            return folder / "vng"
    raise VmUnavailable(f"vng (virtme-ng) is not installed; {INSTALL_HINT}")


def _require_plain_path(what: str, path: Path) -> None:
    if not _SAFE_PATH.fullmatch(str(path)):
        raise ValueError(f"{what} {path}: vng needs a path made of [A-Za-z0-9._/+@:-] only")


def _qemu_drive_args(disks: list[Disk]) -> list[str]:
    args: list[str] = []
    for i, disk in enumerate(disks):
        if not disk.path.is_file():
            raise FileNotFoundError(f"disk image {disk.path} does not exist (use create_disk)")
        file = str(disk.path.absolute()).replace(",", ",,")  # QEMU option escaping
        device = f"virtio-blk-pci,drive=d{i}"
        if disk.serial is not None:
            device += f",serial={disk.serial}"
        args += ["-drive", f"file={file},if=none,id=d{i},format=raw", "-device", device]
    return args


_RUNNER = """\
#!/bin/bash
# Written by tests/vm/harness.py: prepares the guest, then runs script.sh with set -e.
vm={vmdir}
export RWDIR={rwdir}
export PYTHON={python}
export PYTHONDONTWRITEBYTECODE=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo booted > "$vm/state"
# settle once more if udevd dropped the connection ("Broken pipe": a busy udevd can).
settle() {{
    udevadm settle --timeout=120 2>&1 || {{ sleep 2; udevadm settle --timeout=120 2>&1; }}
}}
if ! out=$(modprobe dm_crypt 2>&1 && modprobe zfs 2>&1 && settle)
then
    printf '%s\\n' "$out" > "$vm/setup-error"
    exit 125
fi
echo running > "$vm/state"
cd "$RWDIR"
bash "$vm/script.sh"
rc=$?
echo "$rc" > "$vm/status"
exit "$rc"
"""

_PRELUDE = """\
set -e
result() { printf '@@RESULT %s=%s\\n' "$1" "$2"; }
"""


def run_in_vm(
    script: str,
    disks: list[Disk],
    *,
    rwdir: Path,
    timeout: float,
    memory: str = "2G",
    cpus: int = 2,
    kernel: Path | None = None,
    verbose: bool = False,
    tpm: Path | None = None,
) -> VmResult:
    """Boot a guest, run ``script`` in it as root with ``set -e``, power off, report.

    ``disks`` are attached as virtio-blk, in order (``/dev/vda``, ``/dev/vdb``...). ``rwdir``
    (created if missing) is shared read-write at the same path; the harness keeps its own files
    in ``rwdir/.vm``. ``timeout`` bounds the whole run, boot included: the VM is killed after it
    and :class:`VmTimeout` raised. ``verbose`` adds the kernel's boot log to stderr.

    ``tpm`` (a host folder, created if missing) gives the guest a TPM 2.0 whose state is kept
    there: swtpm runs for the length of the VM (its log is ``rwdir/.vm/swtpm.log``) and is
    stopped when the VM ends, whatever the outcome.

    Returns the script's exit status and output whatever the status (see :meth:`VmResult.check`).
    Raises :class:`VmUnavailable` if the VM cannot be started here and :class:`VmError` if it
    started but the script did not run to its end.
    """
    rwdir = Path(rwdir).absolute()
    _require_plain_path("rwdir", rwdir)
    rwdir.mkdir(parents=True, exist_ok=True)
    kernel = kernel if kernel is not None else find_kernel()
    _require_plain_path("kernel", kernel)
    vng = find_vng()
    # The venv's python is a symlink to the base interpreter: resolve its folder, not itself.
    python = Path(sys.executable).parent.resolve() / Path(sys.executable).name
    if shutil.which("qemu-system-x86_64") is None:
        raise VmUnavailable(f"qemu-system-x86_64 is not installed; {INSTALL_HINT}")
    swtpm = None
    if tpm is not None:
        tpm = Path(tpm).absolute()
        _require_plain_path("tpm", tpm)  # swtpm splits its options at commas
        swtpm = find_swtpm()

    vmdir = rwdir / ".vm"
    if vmdir.exists():
        shutil.rmtree(vmdir)
    vmdir.mkdir()
    runner = vmdir / "runner.sh"
    runner.write_text(
        _RUNNER.format(
            vmdir=shlex.quote(str(vmdir)),
            rwdir=shlex.quote(str(rwdir)),
            python=shlex.quote(str(python)),
        ),
        encoding="utf-8",
    )
    (vmdir / "script.sh").write_text(_PRELUDE + script + "\n", encoding="utf-8")

    argv = [
        str(vng),
        "--run",
        str(kernel),
        "--disable-kvm",
        # virtiofsd cannot start here; asking for 9p at once saves the seconds of retrying.
        "--force-9p",
        "--memory",
        memory,
        "--cpus",
        str(cpus),
        f"--rwdir={rwdir}",
        # vng >= 1.3x overlays /etc (and /tmp, /var...) by default; ask for it in any case:
        # zgenhostid must be able to write /etc/hostid.
        "--overlay-rwdir=/etc",
        f"--append=module_blacklist={','.join(_BLACKLIST)}",
    ]
    if verbose:
        argv.append("--verbose")
    qemu_args = _qemu_drive_args(disks)
    tpm_running: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    socket_dir: Path | None = None
    if tpm is not None and swtpm is not None:
        socket = vmdir / "swtpm.sock"
        if len(str(socket)) > _SUN_PATH_MAX:
            # Deep temporary folders: a short folder of its own, removed after the run.
            socket_dir = Path(tempfile.mkdtemp(prefix="swtpm-"))
            socket = socket_dir / "swtpm.sock"
        qemu_args += _qemu_tpm_args(socket)
        tpm_running = swtpm_running(swtpm, tpm, socket, vmdir / "swtpm.log")
    if qemu_args:
        # vng joins --qemu-opts into a shell command line: quote for the shell.
        argv.append("--qemu-opts=" + shlex.join(qemu_args))
    argv += ["--exec", f"bash {shlex.quote(str(runner))}"]

    try:
        with tpm_running:
            return _run_vng(argv, rwdir, vmdir, vng, timeout)
    finally:
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)


def _run_vng(argv: list[str], rwdir: Path, vmdir: Path, vng: Path, timeout: float) -> VmResult:
    """Run vng (``argv``) to its end or ``timeout`` and read what the runner left in ``vmdir``."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            cwd=rwdir,
            start_new_session=True,  # vng -> sh -> virtme-run -> qemu: kill them as one group
        )
    except OSError as exc:
        raise VmUnavailable(f"cannot run {vng}: {exc}; {INSTALL_HINT}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        state = _read(vmdir / "state") or "not booted"
        raise VmTimeout(
            f"VM killed after {timeout:.0f}s (guest state: {state}); {_cmd(argv)}",
            stdout=stdout,
            stderr=stderr,
        ) from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    duration = time.monotonic() - start

    status = _read(vmdir / "status")
    if status is None:
        setup_error = _read(vmdir / "setup-error")
        if setup_error is not None:
            message = f"guest setup (modprobe dm_crypt zfs, udevadm settle) failed: {setup_error}"
        elif _read(vmdir / "state") is None:
            message = (
                f"the guest never ran the script (vng exit status {proc.returncode}); "
                f"rerun with verbose=True for the boot log; {_cmd(argv)}"
            )
        else:
            message = f"the guest stopped in the script (vng exit status {proc.returncode})"
        raise VmError(message, stdout=stdout, stderr=stderr)
    return VmResult(int(status), stdout, stderr, duration, argv)


def find_swtpm() -> Path:
    """The ``swtpm`` command on PATH; :class:`VmUnavailable` with the install hint if missing."""
    found = shutil.which("swtpm")
    if found is None:
        raise VmUnavailable(f"swtpm is not installed (for the guest's TPM); {INSTALL_HINT}")
    return Path(found)


def _qemu_tpm_args(socket: Path) -> list[str]:
    """QEMU options attaching the swtpm whose control socket is ``socket`` as a TIS TPM 2.0.

    The emulator backend talks to swtpm's control channel (QEMU docs/specs/tpm.rst, "The QEMU
    TPM emulator device"); tpm-tis is the x86 ISA TPM interface that the kernel's built-in
    tpm_tis driver finds.
    """
    return [
        "-chardev",
        f"socket,id=chrtpm,path={socket}",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-tis,tpmdev=tpm0",
    ]


def swtpm_argv(swtpm: Path, state: Path, socket: Path, log: Path) -> list[str]:
    """swtpm's command line: a TPM 2.0 keeping its state in ``state``, controlled over ``socket``.

    No ``--flags startup-clear`` (swtpm(8): it makes swtpm send TPM2_Startup itself): QEMU
    initialises the TPM through the control channel at each VM start (a power cycle: PCRs
    reset, NV and keys kept), and the guest's firmware sends TPM2_Startup, as on a machine.
    ``--terminate`` ends swtpm when QEMU closes the connection; the harness stops it anyway.
    """
    return [
        str(swtpm),
        "socket",
        "--tpm2",
        "--tpmstate",
        f"dir={state}",
        "--ctrl",
        f"type=unixio,path={socket}",
        "--log",
        f"file={log}",
        "--terminate",
    ]


@contextlib.contextmanager
def swtpm_running(swtpm: Path, state: Path, socket: Path, log: Path) -> Iterator[None]:
    """Run swtpm for the ``with`` block: wait for its control socket, stop it at the end.

    Raises :class:`VmError` (with swtpm's log) if it exits or makes no socket in
    :data:`SWTPM_START_TIMEOUT` seconds.
    """
    state.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)
    argv = swtpm_argv(swtpm, state, socket, log)
    # Its own messages before the log is open (bad options) go to a file beside the log: a
    # pipe nobody reads could fill and stall it.
    with log.with_suffix(".stderr").open("w+", encoding="utf-8", errors="replace") as stderr:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        except OSError as exc:
            raise VmUnavailable(f"cannot run {swtpm}: {exc}; {INSTALL_HINT}") from exc
        try:
            deadline = time.monotonic() + SWTPM_START_TIMEOUT
            while not socket.is_socket():
                if proc.poll() is not None or time.monotonic() > deadline:
                    _stop(proc)
                    stderr.seek(0)
                    raise VmError(
                        f"swtpm made no control socket {socket} "
                        f"(exit status {proc.returncode}); {_cmd(argv)}",
                        stdout=_read(log) or "",
                        stderr=stderr.read(),
                    )
                time.sleep(0.05)
            yield
        finally:
            _stop(proc)
            socket.unlink(missing_ok=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End ``proc`` (SIGTERM, then SIGKILL after 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _cmd(argv: list[str]) -> str:
    return "command: " + shlex.join(argv)
