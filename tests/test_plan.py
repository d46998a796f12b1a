"""Install plans: the steps each backend gets, and the dry-run script."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType

import pytest
from helpers import PLAN_SPEC, detached, pool_spec, with_first

from advisor.errors import PluginError, UsageError
from advisor.install.plan import build_plan, render_script, steps_fingerprint
from advisor.models import Backend, InstallSpec, Member, Step
from advisor.settings import check_header_given
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_zfs_native import ZfsNativeBackend

SPEC = PLAN_SPEC
DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"


def ids(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [step.id for step in plan.steps]


def test_luks_plan_order_and_commands() -> None:
    plan = build_plan(SPEC, LuksBackend(), generate_hardware_config=False)
    assert ids(plan) == [
        "wipe-disk", "partition", "settle", "wipe-partitions", "format-esp",
        "luks-format", "luks-open", "hostid-write", "hostid", "create-pool",
        "dataset-root", "snapshot-blank", "dataset-nix", "dataset-home", "dataset-persist",
        "root-dir", "mount-root", "mount-points", "mount-esp",
        "mount-nix", "mount-home", "mount-persist",
        "write-config", "persist-config", "copy-config", "check",
    ]  # fmt: skip
    # Last, the installed system is checked under the root, its warnings printed.
    assert plan.step("check").argv[-4:] == ("check", "--root", "/mnt", "--summary")
    fmt = plan.step("luks-format")
    assert fmt.argv == (
        "cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--sector-size", "4096",
        "--key-file=-", DATA,
    )  # fmt: skip
    assert fmt.secret == "passphrase" and not fmt.secret_newline and fmt.destructive
    pool = plan.step("create-pool")
    assert pool.argv[-2:] == ("rpool", "/dev/mapper/cryptroot")
    assert "-o" in pool.argv and "ashift=12" in pool.argv and "autotrim=on" in pool.argv
    for prop in ("acltype=posixacl", "canmount=off", "compression=zstd", "normalization=none",
                 "relatime=on", "xattr=sa", "dnodesize=auto", "mountpoint=none"):  # fmt: skip
        assert prop in pool.argv
    assert pool.secret is None  # LUKS: the pool itself is not encrypted
    # Written beside /etc/hostid and renamed over it: on the NixOS installer /etc/hostid
    # is a link into the read-only store.
    assert plan.step("hostid-write").argv == (
        "zgenhostid", "-f", "-o", "/etc/hostid.advisor", "8f2a91c4",
    )  # fmt: skip
    assert plan.step("hostid").argv == ("mv", "-f", "/etc/hostid.advisor", "/etc/hostid")
    assert plan.step("snapshot-blank").probe == (
        "zfs", "list", "-H", "-t", "snapshot", "-o", "name", "rpool/local/root@blank",
    )  # fmt: skip
    assert plan.step("mount-esp").argv == (
        "mount", "-t", "vfat", "-o", "umask=0077",
        "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "/mnt/boot",
    )  # fmt: skip
    config = plan.step("write-config")
    assert config.secret == "password"
    assert "--password-stdin" in config.argv
    assert config.argv[config.argv.index("--data-device") + 1] == DATA  # by partition UUID
    # Every argv is a list of words: no shell anywhere.
    assert all(step.argv[0] not in ("sh", "bash") for step in plan.steps)


def test_destructive_steps_are_marked() -> None:
    plan = build_plan(SPEC, LuksBackend(), generate_hardware_config=False)
    destructive = {s.id for s in plan.steps if s.destructive}
    assert destructive == {
        "wipe-disk", "partition", "wipe-partitions", "format-esp", "luks-format", "create-pool",
    }  # fmt: skip


def test_zfs_native_encrypts_the_pool_with_the_passphrase_on_stdin() -> None:
    spec = replace(SPEC, backend="zfs-native")
    plan = build_plan(spec, ZfsNativeBackend(), generate_hardware_config=True)
    assert "luks-format" not in ids(plan)
    pool = plan.step("create-pool")
    for prop in ("encryption=aes-256-gcm", "keyformat=passphrase", "keylocation=prompt"):
        assert prop in pool.argv
    assert pool.secret == "passphrase" and pool.secret_newline
    # The pool is created on the partition's by-id path, the one NixOS imports from.
    assert pool.argv[-1] == "/dev/disk/by-id/virtio-disk01-part2"
    assert plan.step("hardware-config").argv == (
        "nixos-generate-config", "--root", "/mnt", "--no-filesystems",
    )  # fmt: skip
    config = plan.step("write-config").argv
    assert config[config.index("--data-device") + 1] == "/dev/disk/by-id/virtio-disk01-part2"


def test_disk_without_serial_uses_partition_uuids() -> None:
    spec = with_first(replace(SPEC, backend="zfs-native"),
                      disk="/dev/disk/by-path/pci-0000:00:05.0",
                      disk_id="pci-0000:00:05.0", disk_serial=None)  # fmt: skip
    plan = build_plan(spec, ZfsNativeBackend(), generate_hardware_config=False)
    assert plan.step("create-pool").argv[-1] == DATA


def test_detached_header_is_backed_up_and_verified_before_the_data_is_opened() -> None:
    spec = detached(SPEC, ["/tmp/hdr.img"], ["/tmp/hdr.backup"])
    plan = build_plan(spec, LuksDetachedBackend(), generate_hardware_config=False)
    order = ids(plan)
    assert (
        order.index("luks-format")
        < order.index("header-backup")
        < order.index("header-verify")
        < order.index("luks-open")
        < order.index("create-pool")
    )
    fmt = plan.step("luks-format").argv
    assert fmt[fmt.index("--header") + 1] == "/tmp/hdr.img"
    assert plan.step("header-backup").argv == (
        "cryptsetup", "luksHeaderBackup", "/tmp/hdr.img", "--header-backup-file", "/tmp/hdr.backup",
    )  # fmt: skip
    config = plan.step("write-config").argv
    assert config[config.index("--header") + 1] == "/tmp/hdr.img"


def test_fast_kdf_only_when_asked() -> None:
    slow = build_plan(SPEC, LuksBackend(), generate_hardware_config=False)
    fast = build_plan(replace(SPEC, fast_kdf=True), LuksBackend(), generate_hardware_config=False)
    assert "--pbkdf" not in slow.step("luks-format").argv
    assert "pbkdf2" in fast.step("luks-format").argv
    native = build_plan(replace(SPEC, backend="zfs-native", fast_kdf=True), ZfsNativeBackend(),
                        generate_hardware_config=False)  # fmt: skip
    assert "pbkdf2iters=100000" in native.step("create-pool").argv


def test_overrides_replace_reference_options() -> None:
    spec = replace(SPEC, pool_options={"ashift": "13"}, dataset_options={"compression": "lz4"})
    argv = build_plan(spec, LuksBackend(), generate_hardware_config=False).step("create-pool").argv
    assert "ashift=13" in argv and "ashift=12" not in argv
    assert "compression=lz4" in argv and "compression=zstd" not in argv


def test_trim_opens_luks_with_discards() -> None:
    plan = build_plan(
        replace(SPEC, settings=replace(SPEC.settings, trim=True)),
        LuksBackend(),
        generate_hardware_config=False,
    )
    assert "--allow-discards" in plan.step("luks-open").argv


def test_a_plan_keeps_its_fingerprint() -> None:
    # Pinned for plan format 5: a change to it makes every saved plan and every install
    # under way refuse to go on, so it must be a deliberate one (with a new format).
    plan = build_plan(
        SPEC, LuksBackend(), generate_hardware_config=True, advisor_command=("advisor",)
    )
    # advisor's own checks run with the interpreter that runs advisor (verify settled):
    # its path is the machine's, so it is named "python" for the pin.
    steps = [
        replace(step, argv=tuple("python" if w == sys.executable else w for w in step.argv))
        for step in plan.steps
    ]
    assert steps_fingerprint(steps) == "b2027c423d0c3ee2"


def test_fingerprint_includes_env_and_interactive() -> None:
    def with_step(step: Step) -> str:
        return build_plan(SPEC, _Provides(step), generate_hardware_config=False).fingerprint

    plain = with_step(Step("tpm", "Enrol the TPM2", ("true",)))
    envs = {with_step(Step("tpm", "Enrol the TPM2", ("true",), env={"FOO": v})) for v in "ab"}
    asking = with_step(Step("tpm", "Enrol the TPM2", ("true",), interactive=True))
    assert len({plain, asking, *envs}) == 4
    # A read-only mapping is taken, and the plan holds (and hashes) a plain dict.
    frozen = Step("tpm", "Enrol the TPM2", ("true",), env=MappingProxyType({"FOO": "a"}))
    plan = build_plan(SPEC, _Provides(frozen), generate_hardware_config=False)
    assert type(plan.step("tpm").env) is dict and plan.fingerprint in envs


def test_the_script_runs_a_step_with_its_env_and_marks_one_at_the_terminal() -> None:
    env = {"FOO": "two words", "PATH": "/bin:/usr/bin"}
    extra = (
        Step("env", "Use FOO", ("sh", "-c", 'printf %s "$FOO"'), env=env,
             restore=(("true",),)),
        Step("touch-key", "Touch the security key", ("fido2-token", "-L"), interactive=True),
    )  # fmt: skip
    script = render_script(build_plan(SPEC, _Provides(*extra), generate_hardware_config=False))
    lines = script.splitlines()
    command = "env 'FOO=two words' PATH=/bin:/usr/bin sh -c 'printf %s \"$FOO\"'"
    assert command in lines
    assert "#   on --resume, if undone: env 'FOO=two words' PATH=/bin:/usr/bin true" in lines
    marked = [
        line
        for line in lines
        if line.endswith("touch-key: Touch the security key -- needs you at the terminal")
    ]
    assert len(marked) == 1 and lines[lines.index(marked[0]) + 1] == "fido2-token -L"
    # The shell runs what the runner runs: the script's line gives the program FOO.
    shell = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert shell.stdout == "two words"


def test_fingerprint_changes_with_the_plan() -> None:
    a = build_plan(SPEC, LuksBackend(), generate_hardware_config=False)
    b = build_plan(
        replace(SPEC, settings=replace(SPEC.settings, host_id="deadbeef")),
        LuksBackend(),
        generate_hardware_config=False,
    )
    assert (
        a.fingerprint == build_plan(SPEC, LuksBackend(), generate_hardware_config=False).fingerprint
    )
    assert a.fingerprint != b.fingerprint


@pytest.mark.parametrize("backend", [LuksBackend(), ZfsNativeBackend()])
def test_script_shows_every_step_and_no_secret(backend) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(replace(SPEC, backend=backend.name), backend, generate_hardware_config=False)
    script = render_script(plan)
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)  # valid shell
    for number, step in enumerate(plan.steps, start=1):
        assert f"# [{number}/{len(plan.steps)}] {step.id}" in script
        assert shlex.join(step.argv) in script
    assert "DESTROYS DATA" in script
    assert "printf '%s\\n' \"$ADVISOR_PASSWORD\" | " in script
    assert script.count("$ADVISOR_PASSPHRASE") == sum(s.secret == "passphrase" for s in plan.steps)


def test_script_says_how_to_run_exactly_it() -> None:
    plan = build_plan(SPEC, LuksBackend(), generate_hardware_config=False)
    assert "--save FILE" in render_script(plan) and "chosen anew" in render_script(plan)
    saved = render_script(plan, runs_as="--plan 'my plan.json'")
    exact = "# Its GUIDs and host id are fixed; run exactly it with: advisor install --plan 'my"
    assert exact in saved
    subprocess.run(["sh", "-n"], input=saved, text=True, check=True)


@pytest.mark.parametrize(
    ("backend", "device", "load_key"),
    [
        (LuksBackend(), "/dev/mapper/cryptroot", False),
        (ZfsNativeBackend(), "/dev/disk/by-id/virtio-disk01-part2", True),
    ],
)
def test_what_a_restart_undoes_is_restored_on_resume(
    backend: LuksBackend | ZfsNativeBackend, device: str, load_key: bool
) -> None:
    spec = replace(SPEC, backend=backend.name)
    plan = build_plan(spec, backend, generate_hardware_config=False)
    restored = {step.id for step in plan.steps if step.restore}
    expected = {"hostid-write", "hostid", "create-pool", "root-dir", "mount-root", "mount-esp",
                "mount-nix", "mount-home", "mount-persist"}  # fmt: skip
    if backend.name == "luks":
        expected.add("luks-open")
        assert plan.step("luks-open").restore == (plan.step("luks-open").argv,)
    assert restored == expected
    pool = plan.step("create-pool")
    assert pool.restore[0] == ("zpool", "import", "-N", "-d", device, "rpool")
    assert (pool.restore[1:] == (("zfs", "load-key", "rpool"),)) is load_key
    # Everything that destroys data stays done: a resume never formats or creates again.
    assert not any(
        step.restore for step in plan.steps if step.destructive and step.id != "create-pool"
    )
    script = render_script(plan)
    assert "#   on --resume, if undone: zpool import -N -d" in script


class _AssessOnly(Backend):
    """Like the example TPM2 plugin: rated and ranked, but adds no encryption."""

    name = "assess-only"
    summary = "takes part in assessments only"
    api_version = 3
    capabilities = {}  # noqa: RUF012


class _EmptyProvision(_AssessOnly):
    name = "empty-provision"
    installable = True  # says so, but adds nothing to this spec

    def provision_steps(self, spec: InstallSpec, member: Member) -> tuple[Step, ...]:
        return ()


def test_builtin_backends_are_installable() -> None:
    for backend in (LuksBackend(), ZfsNativeBackend(), LuksDetachedBackend()):
        assert backend.installable
    assert not _AssessOnly().installable


def test_backend_without_encryption_is_refused() -> None:
    spec = replace(SPEC, backend="assess-only")
    with pytest.raises(
        UsageError, match="assess-only can be assessed but not installed: it provides no"
    ):
        build_plan(spec, _AssessOnly(), generate_hardware_config=False)
    # Defines provision_steps but returns none for this spec: still no encryption.
    with pytest.raises(PluginError, match="'empty-provision' adds no encryption"):
        build_plan(replace(spec, backend="empty-provision"), _EmptyProvision(),
                   generate_hardware_config=False)  # fmt: skip


class _TpmDetached(LuksDetachedBackend):
    """A third party's backend that keeps the header off the disk as well."""

    name = "tpm-detached"


def test_header_options_follow_the_backend_attribute_not_a_name() -> None:
    backends = (LuksBackend(), LuksDetachedBackend(), _TpmDetached())
    assert _TpmDetached.detached_header and not LuksBackend.detached_header
    check_header_given(_TpmDetached(), backends, given=True)  # accepted: it takes a header
    check_header_given(LuksBackend(), backends, given=False)
    message = "--header is only for the luks-detached or tpm-detached backend, not luks"
    with pytest.raises(UsageError, match=re.escape(message)):
        check_header_given(LuksBackend(), backends, given=True)
    with pytest.raises(UsageError, match="only for the no installed backend, not luks"):
        check_header_given(LuksBackend(), (LuksBackend(),), given=True)


class _Provides(LuksBackend):
    """LUKS with some extra steps of a plugin's, to check what build_plan accepts."""

    name = "provides"

    def __init__(self, *extra: object) -> None:
        self.extra = extra

    def provision_steps(self, spec: InstallSpec, member: Member) -> Sequence[Step]:
        return (*super().provision_steps(spec, member), *self.extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (Step("partition", "again", ("true",)), "step id 'partition' is used twice"),
        (Step("pin", "a PIN", ("true",), secret="pin"), "secret 'pin' is none of the secrets"),
        (Step("empty", "nothing", ()), "step 'empty': argv must be a non-empty sequence"),
        (Step("number", "a number", ("sleep", 1)), "argv must hold only strings"),  # type: ignore[arg-type]
        (Step("nul", "a NUL", ("echo", "a\0b")), "argv must hold only strings without NUL"),
        (Step("odd\nrm -rf /", "id", ("true",)), "is not kebab-case"),
        (Step("title", "line\nrm -rf /", ("true",)), "the title must be one line"),
        (Step("probe", "probe", ("true",), probe=()), "step 'probe': probe must be a non-empty"),
        (Step("undo", "undo", ("true",), restore=((),)), "step 'undo': restore must be a non"),
        ("wipefs /dev/sda", "provision_steps returned str, not Step"),
        (
            Step("pin", "a PIN", ("true",), secret="passphrase", interactive=True),
            "an interactive step reads the terminal and cannot take a secret",
        ),
        (
            Step("flag", "flag", ("true",), interactive="yes"),  # type: ignore[arg-type]
            "interactive must be True or False",
        ),
        (Step("env", "env", ("true",), env={"foo": "1"}), "env name 'foo' is not A-Z"),
        (Step("env", "env", ("true",), env={"1X": "1"}), "env name '1X' is not A-Z"),
        (Step("env", "env", ("true",), env={"A-B": "1"}), "env name 'A-B' is not A-Z"),
        (Step("env", "env", ("true",), env={"X": "a\0b"}), "env X: the value must be one line"),
        (Step("env", "env", ("true",), env={"X": "a\nrm -rf /"}), "env X: the value must be"),
        (Step("env", "env", ("true",), env={"X": 1}), "env X: the value must be"),  # type: ignore[dict-item]
        (Step("env", "env", ("true",), env={"LC_ALL": "de_DE"}), "env LC_ALL cannot be set"),
        (
            Step("env", "env", ("true",), env={"ADVISOR_PASSPHRASE": "x"}),
            "env ADVISOR_PASSPHRASE cannot be set",
        ),
        (Step("env", "env", ("true",), env=[("X", "1")]), "env must map names to values"),  # type: ignore[arg-type]
    ],
)
def test_backend_steps_are_checked(extra: object, problem: str) -> None:
    with pytest.raises(PluginError, match=rf"backend 'provides': .*{re.escape(problem)}"):
        build_plan(SPEC, _Provides(extra), generate_hardware_config=False)


def test_backend_that_raises_is_named() -> None:
    class Broken(LuksBackend):
        name = "broken"

        def pool_device(self, spec: InstallSpec, member: Member) -> str:
            raise KeyError("mapper")

    with pytest.raises(PluginError, match="backend 'broken': pool_device raised KeyError"):
        build_plan(SPEC, Broken(), generate_hardware_config=False)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_builtin_plan_has_unique_kebab_case_step_ids(count: int) -> None:
    pool = pool_spec(count, "raidz1" if count == 3 else None)
    headers = [f"/tmp/h{n}" for n in range(count)]
    header_spec = detached(pool, headers, [f"/tmp/b{n}" for n in range(count)])
    for spec, backend in ((pool, LuksBackend()), (header_spec, LuksDetachedBackend()),
                          (replace(pool, backend="zfs-native"), ZfsNativeBackend())):  # fmt: skip
        plan = build_plan(spec, backend, generate_hardware_config=True)
        assert len(set(ids(plan))) == len(plan.steps)
        assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", step_id) for step_id in ids(plan))


def test_script_comments_stay_comments() -> None:
    # A newline in anything a comment line shows would make the rest a command.
    hostile = "x\ntouch /tmp/pwned"
    spec = with_first(replace(SPEC, root=f"/mnt/{hostile}"), disk_serial=hostile)
    script = render_script(build_plan(spec, LuksBackend(), generate_hardware_config=False),
                           runs_as=hostile)  # fmt: skip
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    # Read as the shell reads words: the hostile text stays inside one quoted word or
    # comment; a comment it broke out of would leave 'touch' a word of its own.
    assert "touch" not in shlex.split(script, comments=True)
    assert "# target: /dev/disk/by-id/virtio-disk01 (serial x\\ntouch /tmp/pwned" in script
    assert "run exactly it with: advisor install x\\ntouch /tmp/pwned\n" in script


def test_root_is_created_before_it_is_mounted() -> None:
    plan = build_plan(replace(SPEC, root="/target"), LuksBackend(), generate_hardware_config=False)
    order = ids(plan)
    assert order.index("root-dir") + 1 == order.index("mount-root")
    step = plan.step("root-dir")
    assert step.argv == ("mkdir", "-p", "/target") and not step.destructive
    assert step.probe == ("test", "-d", "/target")
    assert step.restore == (step.argv,)  # the live system's /target may be gone after a restart


@pytest.mark.parametrize(
    ("pool_options", "dataset_options", "refusal"),
    [
        ({}, {"mountpoint": "/"}, "--fs-option mountpoint: cannot be overridden: the layout"),
        ({}, {"canmount": "on"}, "--fs-option canmount: cannot be overridden"),
        ({}, {"encryption": "off"}, "--fs-option encryption: cannot be overridden: encryption"),
        ({}, {"keylocation": "file:///k"}, "--fs-option keylocation: cannot be overridden"),
        ({}, {"keyformat": "raw"}, "--fs-option keyformat: cannot be overridden"),
        ({}, {"keysource": "raw,prompt"}, "--fs-option keysource: cannot be overridden"),
        ({"Mountpoint": "/x"}, {}, "--pool-option Mountpoint: cannot be overridden"),
    ],
)
def test_overrides_that_break_the_layout_are_refused(
    pool_options: dict[str, str], dataset_options: dict[str, str], refusal: str
) -> None:
    for backend in (LuksBackend(), ZfsNativeBackend()):
        spec = replace(SPEC, backend=backend.name, pool_options=pool_options,
                       dataset_options=dataset_options)  # fmt: skip
        with pytest.raises(UsageError, match=re.escape(refusal)):
            build_plan(spec, backend, generate_hardware_config=False)


def test_header_verify_gets_the_passphrase_on_stdin_as_luks_format_does() -> None:
    spec = detached(SPEC, ["/tmp/hdr.img"], ["/tmp/hdr.backup"])
    plan = build_plan(spec, LuksDetachedBackend(), generate_hardware_config=False)
    verify, fmt = plan.step("header-verify"), plan.step("luks-format")
    assert verify.argv[1:] == ("-m", "advisor.install.verify", "header-backup", "/tmp/hdr.img",
                               "/tmp/hdr.backup", DATA)  # fmt: skip
    assert (verify.secret, verify.secret_newline) == (fmt.secret, fmt.secret_newline)
    assert (verify.secret, verify.secret_newline) == ("passphrase", False)
    command = "printf '%s' \"$ADVISOR_PASSPHRASE\" | " + shlex.join(verify.argv)
    assert command in render_script(plan)


# Pools on several disks


def test_a_mirror_prepares_each_disk_then_creates_the_pool_over_every_container() -> None:
    plan = build_plan(pool_spec(2), LuksBackend(), generate_hardware_config=False)
    assert ids(plan)[:13] == [
        "disk1-wipe-disk", "disk1-partition", "disk2-wipe-disk", "disk2-partition", "settle",
        "disk1-wipe-partitions", "disk1-format-esp", "disk1-luks-format", "disk1-luks-open",
        "disk2-wipe-partitions", "disk2-format-esp", "disk2-luks-format", "disk2-luks-open",
    ]  # fmt: skip
    # One container per disk, each opened under its own name, with the one passphrase.
    assert plan.step("disk2-luks-open").argv[-2:] == (
        "/dev/disk/by-partuuid/7b4e3d2c-6f5a-4b9c-8d1e-2f3a4b5c6d7e", "cryptroot2",
    )  # fmt: skip
    assert {plan.step(f"disk{n}-luks-format").secret for n in (1, 2)} == {"passphrase"}
    pool = plan.step("create-pool")
    assert pool.argv[-4:] == ("rpool", "mirror", "/dev/mapper/cryptroot1", "/dev/mapper/cryptroot2")
    assert pool.restore[0] == (
        "zpool", "import", "-N", "-d", "/dev/mapper/cryptroot1", "-d", "/dev/mapper/cryptroot2",
        "rpool",
    )  # fmt: skip
    # Every ESP is formatted and mounted: the first at /boot, the second at /boot-2.
    assert plan.step("disk2-mount-esp").argv[-2:] == (
        "/dev/disk/by-partuuid/1c6f2a3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d", "/mnt/boot-2",
    )  # fmt: skip
    assert "/mnt/boot-2" in plan.step("mount-points").argv
    config = plan.step("write-config").argv
    pairs = [config[i + 1] for i, word in enumerate(config) if word == "--esp-device"]
    assert pairs == [
        "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "/dev/disk/by-partuuid/1c6f2a3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d",
    ]


def test_raidz_over_three_disks_on_zfs_native_uses_one_folder_of_device_links() -> None:
    spec = replace(pool_spec(3, "raidz1"), backend="zfs-native")
    pool = build_plan(spec, ZfsNativeBackend(), generate_hardware_config=False).step("create-pool")
    assert pool.argv[-5:] == (
        "rpool", "raidz1", "/dev/disk/by-id/virtio-disk01-part2",
        "/dev/disk/by-id/virtio-disk02-part2", "/dev/disk/by-id/virtio-disk03-part2",
    )  # fmt: skip
    # One disk without a serial has no by-id link: every disk is named by partition UUID,
    # so that boot.zfs.devNodes (one folder) finds them all.
    spec = replace(spec, members=(*spec.members[:2], replace(spec.members[2], disk_serial=None)))
    pool = build_plan(spec, ZfsNativeBackend(), generate_hardware_config=False).step("create-pool")
    assert all(device.startswith("/dev/disk/by-partuuid/") for device in pool.argv[-3:])


def test_swap_partitions_lie_before_the_data_partition_which_keeps_its_number() -> None:
    spec = pool_spec(2, swap_size="4G")
    guids = ("3e8b4c5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f", "4f9c5d6a-7b8c-4d9e-8f1a-2b3c4d5e6f7a")
    spec = replace(
        spec,
        members=tuple(
            replace(m, swap_partuuid=g) for m, g in zip(spec.members, guids, strict=True)
        ),
    )
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False)
    sgdisk = plan.step("disk2-partition").argv
    assert sgdisk.index("--new=3:0:+4G") < sgdisk.index("--new=2:0:0")
    assert f"--partition-guid=3:{guids[1]}" in sgdisk and "--typecode=3:8200" in sgdisk
    assert f"/dev/disk/by-partuuid/{guids[1]}" in plan.step("disk2-wipe-partitions").argv
    config = plan.step("write-config").argv
    swaps = [config[i + 1] for i, word in enumerate(config) if word == "--swap-device"]
    assert swaps == [f"/dev/disk/by-partuuid/{g}" for g in guids]


def test_a_detached_header_per_disk_each_backed_up_before_its_container_opens() -> None:
    spec = detached(pool_spec(2), ["/k/h1", "/k/h2"], ["/b/h1", "/b/h2"])
    plan = build_plan(spec, LuksDetachedBackend(), generate_hardware_config=False)
    order = ids(plan)
    for n in (1, 2):
        assert (
            order.index(f"disk{n}-luks-format")
            < order.index(f"disk{n}-header-backup")
            < order.index(f"disk{n}-header-verify")
            < order.index(f"disk{n}-luks-open")
        )
        backup = plan.step(f"disk{n}-header-backup").argv
        assert backup[2] == f"/k/h{n}" and backup[-1] == f"/b/h{n}"
    config = plan.step("write-config").argv
    assert [config[i + 1] for i, w in enumerate(config) if w == "--header"] == ["/k/h1", "/k/h2"]


def test_the_script_names_every_disk_and_the_topology() -> None:
    script = render_script(build_plan(pool_spec(3, "raidz1"), LuksBackend(),
                                      generate_hardware_config=False))  # fmt: skip
    assert "# pool: raidz1 of 3 disks" in script
    for n in (1, 2, 3):
        assert f"# disk{n}: /dev/disk/by-id/virtio-disk0{n} (serial disk0{n}," in script
    assert "disk3-luks-format: Format the data partition of virtio-disk03 as LUKS2" in script
