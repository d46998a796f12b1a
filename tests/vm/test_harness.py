"""The VM harness itself: disks, udev, dm-crypt, OpenZFS, /etc and the shared folder in a guest.

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
    VmResult,
    VmScriptError,
    VmTimeout,
    VmUnavailable,
    create_disk,
    find_kernel,
    parse_size,
    run_in_vm,
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
def test_timeout_kills_the_vm(vm_kernel: Path, vm_rwdir: Path) -> None:
    start = time.monotonic()
    with pytest.raises(VmTimeout, match="killed after 3s"):
        run_in_vm("sleep 600", [], rwdir=vm_rwdir, timeout=3)
    assert time.monotonic() - start < 30
    # QEMU exports the shared folder, so its command line names it: none may be left.
    time.sleep(0.5)
    left = subprocess.run(
        ["pgrep", "-f", "-a", str(vm_rwdir)], capture_output=True, text=True, check=False
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
