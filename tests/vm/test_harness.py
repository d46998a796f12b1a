"""The VM harness itself: disks, udev, dm-crypt, OpenZFS, /etc, the shared folder and the TPM.

The ``vm`` tests boot a real kernel under emulation (30-70 s a boot); the others check the
harness's plumbing on the host in milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from harness import (
    INSTALL_HINT,
    VM_TIMEOUT,
    Disk,
    MakeDisk,
    VmError,
    VmResult,
    VmScriptError,
    VmTimeout,
    VmUnavailable,
    create_disk,
    find_kernel,
    find_swtpm,
    parse_size,
    run_in_vm,
    swtpm_argv,
    swtpm_running,
)

LUKS_ZFS_SMOKE = r"""
# --- disks: by-id link for the disk with a serial, none for the disk without
test -b /dev/vda
test -b /dev/vdb
result disk01 "$(readlink -f /dev/disk/by-id/virtio-disk01)"
vdb_links=""
for link in /dev/disk/by-id/*; do
    if [ "$(readlink -f "$link")" = /dev/vdb ]; then vdb_links="$vdb_links $link"; fi
done
result vdb_by_id "${vdb_links:-none}"
result vdb_serial "$(udevadm info --query=property /dev/vdb | sed -n 's/^ID_SERIAL=//p')"

# --- LUKS2 (fast KDF: tests only) on the disk, by its by-id path
dev=/dev/disk/by-id/virtio-disk01
key=correct-horse-battery
printf %s "$key" | cryptsetup luksFormat --batch-mode --type luks2 \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- "$dev"
printf %s "$key" | cryptsetup open --key-file=- "$dev" cryptroot
result luks_type "$(cryptsetup status cryptroot | awk '$1 == "type:" {print $2}')"

# --- a pool on the mapper device, a dataset with a file, a snapshot; export; close
zpool create -f -o ashift=12 -O mountpoint=none -O compression=lz4 \
    -O acltype=posixacl -O xattr=sa rpool /dev/mapper/cryptroot
zfs create -o mountpoint=legacy rpool/root
mkdir -p /tmp/mnt
mount -t zfs rpool/root /tmp/mnt
echo zfs-on-luks > /tmp/mnt/marker
umount /tmp/mnt
zfs snapshot rpool/root@blank
zpool export rpool
cryptsetup close cryptroot
result mapper_after_close "$(ls /dev/mapper | grep -c cryptroot || true)"

# --- reopen and re-import: the snapshot and the file are still there
printf %s "$key" | cryptsetup open --key-file=- "$dev" cryptroot
zpool import -d /dev/mapper rpool
result snapshots "$(zfs list -H -t snapshot -o name | tr '\n' ' ')"
mount -t zfs rpool/root /tmp/mnt
result marker "$(cat /tmp/mnt/marker)"
umount /tmp/mnt
result health "$(zpool list -H -o health rpool)"
zpool export rpool
cryptsetup close cryptroot

# --- /etc is a guest-only overlay: zgenhostid can write /etc/hostid
zgenhostid -f 0xdeadbeef
result hostid "$(hostid)"

# --- the shared folder
uname -r > "$RWDIR/from-guest.txt"
result kernel "$(uname -r)"
"""


@pytest.mark.vm
def test_luks_zfs_smoke_in_one_boot(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    disks = [make_disk("1G", serial="disk01"), make_disk("1G")]
    host_hostid = Path("/etc/hostid").read_bytes() if Path("/etc/hostid").exists() else None

    result = run_in_vm(LUKS_ZFS_SMOKE, disks, rwdir=vm_rwdir, timeout=VM_TIMEOUT).check()
    print(f"LUKS + ZFS smoke test: {result.duration:.1f}s, boot included")

    r = result.results
    assert r["disk01"] == "/dev/vda", result.describe()
    assert r["vdb_by_id"] == "none", result.describe()
    assert r["vdb_serial"] == "", result.describe()
    assert r["luks_type"] == "LUKS2"
    assert r["mapper_after_close"] == "0"
    assert r["snapshots"].split() == ["rpool/root@blank"]
    assert r["marker"] == "zfs-on-luks"
    assert r["health"] == "ONLINE"
    assert r["hostid"] == "deadbeef"
    # ... and the host's /etc was not touched.
    if host_hostid is None:
        assert not Path("/etc/hostid").exists()
    else:
        assert Path("/etc/hostid").read_bytes() == host_hostid
    kernel_version = vm_kernel.name.removeprefix("vmlinuz-")
    assert r["kernel"] == kernel_version
    assert (vm_rwdir / "from-guest.txt").read_text().strip() == kernel_version


PYUDEV_LISTING = r"""
"$PYTHON" - <<'EOF'
import json
import pyudev

for device in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk"):
    if device.sys_name.startswith("vd"):
        facts = {"serial": device.get("ID_SERIAL"), "links": sorted(device.device_links)}
        print(f"@@RESULT {device.sys_name}={json.dumps(facts)}")
EOF
"$PYTHON" -m advisor --version > "$RWDIR/advisor-version.txt"
echo to-stderr >&2
false
echo after-false
"""


@pytest.mark.vm
def test_pyudev_in_the_guest_sees_the_serial_and_set_e_stops_the_script(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    """The project's virtualenv runs in the guest and its pyudev sees udev's view of the disk.

    The same boot checks the harness's contract: ``set -e`` stops the script at ``false``,
    whose status comes back, with stdout, stderr and the results printed before it.
    """
    disks = [make_disk("64M", serial="disk01")]

    result = run_in_vm(PYUDEV_LISTING, disks, rwdir=vm_rwdir, timeout=VM_TIMEOUT)
    print(f"boot + pyudev listing: {result.duration:.1f}s")

    assert result.returncode == 1, result.describe()
    assert "after-false" not in result.stdout
    assert "to-stderr" in result.stderr
    with pytest.raises(VmScriptError, match="status 1"):
        result.check()
    vda = json.loads(result.results["vda"])
    assert vda["serial"] == "disk01"
    assert "/dev/disk/by-id/virtio-disk01" in vda["links"]
    assert (vm_rwdir / "advisor-version.txt").read_text().strip()


@pytest.mark.vm
def test_timeout_kills_the_vm_and_its_tpm(vm_kernel: Path, vm_rwdir: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(VmTimeout, match="killed after 3s"):
        run_in_vm("sleep 600", [], rwdir=vm_rwdir, timeout=3, tpm=tmp_path / "tpm")
    assert time.monotonic() - start < 30
    # QEMU exports the shared folder and swtpm names its state folder on their command lines:
    # neither may be left.
    time.sleep(0.5)
    for folder in (vm_rwdir, tmp_path / "tpm"):
        left = subprocess.run(
            ["pgrep", "-f", "-a", str(folder)], capture_output=True, text=True, check=False
        ).stdout
        assert left == ""
    assert not (vm_rwdir / ".vm" / "swtpm.sock").exists()


# PCR 7's SHA-256 bank as 64 hex digits.
PCR7 = r"""
pcr7() { tpm2_pcrread -Q -o /tmp/pcr7 sha256:7 && od -An -tx1 /tmp/pcr7 | tr -d ' \n'; }
"""

TPM_BOOT_1 = (
    PCR7
    + r"""
test -c /dev/tpm0
test -c /dev/tpmrm0
result pcr7_at_boot "$(pcr7)"
# An NV index of the owner's: written in this boot, read back in the next.
printf %s tpm-kept > /tmp/nv
tpm2_nvdefine 0x1500016 -C o -s 8 -a "ownerread|ownerwrite"
tpm2_nvwrite 0x1500016 -C o -i /tmp/nv
result nv_boot1 "$(tpm2_nvread 0x1500016 -C o -s 8)"
# systemd-cryptenroll reaches the TPM (the TSS libraries it dlopens are installed) and seals
# a key to PCR 7's boot value. (A key file on the guest's tmpfs: a test passphrase.)
printf %s tpm-test-passphrase > /tmp/passphrase
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file=/tmp/passphrase /dev/vda
systemd-cryptenroll --unlock-key-file=/tmp/passphrase --tpm2-device=auto --tpm2-pcrs=7 /dev/vda
result token "$(cryptsetup luksDump /dev/vda | grep -o systemd-tpm2)"
# A measurement lasts until the next power cycle only.
tpm2_pcrextend 7:sha256=$(printf '%064d' 1)
result pcr7_extended "$(pcr7)"
"""
)

TPM_BOOT_2 = (
    PCR7
    + r"""
result nv_boot2 "$(tpm2_nvread 0x1500016 -C o -s 8)"
result pcr7_at_boot "$(pcr7)"
# The key sealed in the first boot opens the container, with no passphrase to ask...
/lib/systemd/systemd-cryptsetup attach tpm0 /dev/vda - tpm2-device=auto,headless=true </dev/null
result opened "$(test -b /dev/mapper/tpm0 && echo yes)"
/lib/systemd/systemd-cryptsetup detach tpm0
# ... until PCR 7 changes.
tpm2_pcrextend 7:sha256=$(printf '%064d' 1)
set +e
/lib/systemd/systemd-cryptsetup attach tpm0 /dev/vda - tpm2-device=auto,headless=true </dev/null
result attach_after_extend $?
"""
)


@pytest.mark.vm
def test_tpm_state_lasts_across_two_boots_and_pcrs_reset(
    vm_rwdir: Path, tmp_path: Path, make_disk: MakeDisk
) -> None:
    """The guest's swtpm is one chip across boots: NV and sealed keys kept, PCRs back to their
    boot values; systemd-cryptenroll and systemd-cryptsetup can use it."""
    state = tmp_path / "tpm"  # created by the harness
    disks = [make_disk("64M", serial="disk01")]

    first = run_in_vm(TPM_BOOT_1, disks, rwdir=vm_rwdir, timeout=VM_TIMEOUT, tpm=state).check()
    second = run_in_vm(TPM_BOOT_2, disks, rwdir=vm_rwdir, timeout=VM_TIMEOUT, tpm=state).check()
    print(f"boots with a TPM: {first.duration:.1f}s, {second.duration:.1f}s")

    assert first.results["nv_boot1"] == "tpm-kept", first.describe()
    assert second.results["nv_boot2"] == "tpm-kept", second.describe()
    boot_value = first.results["pcr7_at_boot"]
    assert len(boot_value) == 64, first.describe()
    assert first.results["pcr7_extended"] != boot_value
    assert second.results["pcr7_at_boot"] == boot_value
    assert first.results["token"] == "systemd-tpm2", first.describe()
    assert second.results["opened"] == "yes", second.describe()
    assert second.results["attach_after_extend"] != "0", second.describe()
    assert "Current policy digest does not match" in second.stderr
    assert any(state.iterdir())
    assert (vm_rwdir / ".vm" / "swtpm.log").is_file()
    # swtpm was stopped with the VM: nothing runs on the state folder any more.
    left = subprocess.run(
        ["pgrep", "-f", "-a", str(state)], capture_output=True, text=True, check=False
    ).stdout
    assert left == ""


# --- host-side plumbing, no VM ---------------------------------------------------------------


def test_create_disk_is_sparse(tmp_path: Path) -> None:
    disk = create_disk(tmp_path / "d" / "a.img", "2G", serial="disk01")
    assert disk == Disk(tmp_path / "d" / "a.img", "disk01", 2 << 30)
    assert disk.path.stat().st_size == 2 << 30
    assert disk.path.stat().st_blocks == 0
    assert disk.by_id == "/dev/disk/by-id/virtio-disk01"
    assert create_disk(tmp_path / "b.img", 4096).by_id is None


@pytest.mark.parametrize(
    ("size", "expected"), [(512, 512), ("512", 512), ("64M", 64 << 20), ("1g", 1 << 30)]
)
def test_parse_size(size: int | str, expected: int) -> None:
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["", "1.5G", "-1", 0, "4Q"])
def test_parse_size_rejects(size: int | str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(size)


@pytest.mark.parametrize("serial", ["", "has space", "comma,", "x" * 21])
def test_disk_rejects_serials_qemu_or_udev_would_mangle(serial: str) -> None:
    with pytest.raises(ValueError, match="serial"):
        Disk(Path("/x.img"), serial, 1)


def test_find_kernel_picks_the_newest_with_zfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VM_KERNEL", raising=False)
    boot, modules = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    for version, zfs in [("6.1.0-9-amd64", True), ("6.1.0-10-amd64", True), ("6.2.0-1", False)]:
        (boot / f"vmlinuz-{version}").write_bytes(b"")
        dkms = modules / version / "updates" / "dkms"
        dkms.mkdir(parents=True)
        if zfs:
            (dkms / "zfs.ko").write_bytes(b"")
    assert find_kernel(boot, modules) == boot / "vmlinuz-6.1.0-10-amd64"


def test_find_kernel_without_zfs_names_the_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VM_KERNEL", raising=False)
    (tmp_path / "vmlinuz-6.1.0-9-amd64").write_bytes(b"")
    with pytest.raises(VmUnavailable, match="scripts/install-vm-deps") as info:
        find_kernel(tmp_path, tmp_path / "modules")
    assert "vmlinuz-6.1.0-9-amd64" in str(info.value)
    assert "scripts/install-vm-deps" in INSTALL_HINT


def test_results_collects_markers() -> None:
    stdout = "noise\n@@RESULT a=1\n@@RESULT b=x=y\r\n@@RESULT a=2\n@@RESULT junk\n"
    result = VmResult(0, stdout, "", 1.0, [])
    assert result.results == {"a": "2", "b": "x=y"}
    assert result.check() is result


def test_run_in_vm_rejects_paths_vng_would_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rwdir"):
        run_in_vm("true", [], rwdir=tmp_path / "has space", timeout=1)


def test_install_script_is_executable_and_parses() -> None:
    script = Path(__file__).parents[2] / "scripts" / "install-vm-deps"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_swtpm_argv_has_no_startup_flag_for_qemu_to_start_the_tpm(tmp_path: Path) -> None:
    argv = swtpm_argv(Path("/usr/bin/swtpm"), tmp_path / "st", tmp_path / "s.sock", tmp_path / "l")
    assert argv[:3] == ["/usr/bin/swtpm", "socket", "--tpm2"]
    assert f"dir={tmp_path / 'st'}" in argv
    assert f"type=unixio,path={tmp_path / 's.sock'}" in argv
    assert "--flags" not in argv


def test_missing_swtpm_names_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(VmUnavailable, match=r"swtpm is not installed.*scripts/install-vm-deps"):
        find_swtpm()


def test_run_in_vm_rejects_tpm_folders_swtpm_would_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tpm"):
        run_in_vm("true", [], rwdir=tmp_path / "rw", timeout=1, tpm=tmp_path / "a,b")


def test_swtpm_runs_for_the_block_and_is_stopped_after_it(tmp_path: Path) -> None:
    """The real swtpm on the host: its control socket is there inside the block, gone after."""
    socket, state = tmp_path / "s.sock", tmp_path / "state"
    with swtpm_running(find_swtpm(), state, socket, tmp_path / "swtpm.log"):
        assert socket.is_socket()
        running = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, check=False)
        assert running.returncode == 0
    assert not socket.exists()
    left = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, check=False)
    assert left.returncode == 1


def test_swtpm_that_makes_no_socket_fails_the_run_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "swtpm"
    fake.write_text("#!/bin/sh\necho 'swtpm: state is locked' >&2\nexit 1\n")
    fake.chmod(0o755)
    with (
        pytest.raises(VmError, match=r"no control socket.*exit status 1") as info,
        swtpm_running(fake, tmp_path / "state", tmp_path / "s.sock", tmp_path / "swtpm.log"),
    ):
        pytest.fail("the block must not run")
    assert "swtpm: state is locked" in str(info.value)
