"""disko's own evaluation of an exported ``disko.nix`` (its device tree and the create
script it generates, by ``nixeval.eval_disko`` with the vendored disko) compared with the
install plan of the same spec, item by item. :func:`differences` returns every mismatch
as a line naming the item; an empty list means disko makes what ``advisor install``
makes (the partitions' places are compared by running both sets of sgdisk commands on
image files: :func:`partition_tables`)."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advisor.datasets import Dataset
from advisor.deploy.disko import KEY_FILE, KEY_LOCATION
from advisor.install.plan import Plan
from advisor.models import Member


def script_commands(script: str) -> list[list[str]]:
    """The commands of a shell script, each line with its continuations joined and split
    into words (shell syntax around them, ``if !`` and ``then``, dropped)."""
    joined = re.sub(r"\\\n", " ", script)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("if ! ").removesuffix(" then").removesuffix("; then")
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # a line shlex cannot split (process substitution): not ours
            continue
        if words:
            commands.append(words)
    return commands


def _pairs(words: Sequence[str], flag: str) -> dict[str, str]:
    """``flag name=value`` pairs of a command line (``-o ashift=12``) as a dict."""
    found: dict[str, str] = {}
    for at, word in enumerate(words[:-1]):
        if word == flag:
            name, _, value = words[at + 1].partition("=")
            found[name] = value
    return found


def _steps(plan: Plan, step_id: str) -> list[Any]:
    """The plan's steps with this id, on one disk or (prefixed) on several."""
    return [s for s in plan.steps if s.id == step_id or s.id.endswith(f"-{step_id}")]


def _data_contents(tree: Mapping[str, Any], member: Member) -> Any:
    return tree["disk"][member.tag]["content"]["partitions"]["data"]["content"]


def differences(plan: Plan, evaluated: Mapping[str, Any], datasets: Sequence[Dataset]) -> list[str]:
    """Every way disko's evaluated configuration (``{"tree", "create", "mount"}``) differs
    from ``plan``: partitions, ESP format and mount, LUKS format and open arguments and
    mapper names, pool members and topology, the host id, pool (-o) and root file
    system (-O) properties, the key at creation, every dataset and each of its
    properties and mount points, the @blank snapshots, and what the mount script
    mounts where."""
    tree, create = evaluated["tree"], evaluated["create"]
    commands = script_commands(create)
    spec = plan.spec
    pool = spec.settings.pool
    found: list[str] = []

    def check(item: str, expected: object, actual: object) -> None:
        if expected != actual:
            found.append(f"{item}: advisor install {expected!r}, disko {actual!r}")

    # Disks and partitions (numbers, GUIDs, names, type codes; places: partition_tables).
    check("disks", [m.tag for m in spec.members], sorted(tree["disk"]))
    for member, step in zip(spec.members, _steps(plan, "partition"), strict=True):
        disk = tree["disk"][member.tag]
        check(f"{member.tag} device", member.disk, disk["device"])
        planned = _sgdisk_partitions(step.argv)
        made = _sgdisk_partitions(
            [w for c in commands if c[:1] == ["sgdisk"] and member.disk in c for w in c]
        )
        for number, fields in planned.items():
            for name, value in fields.items():
                if name != "new":
                    check(
                        f"{member.tag} partition {number} {name}",
                        value,
                        made.get(number, {}).get(name),
                    )
        check(f"{member.tag} partition numbers", sorted(planned), sorted(made))
        partitions = disk["content"]["partitions"]
        by_number = {fields["guid"]: number for number, fields in planned.items()}
        for name, partition in partitions.items():
            found_number = by_number.get(partition["uuid"])
            check(f"{member.tag} partition {name} GUID in the plan", True, found_number is not None)
            if found_number is not None:
                number = found_number
                check(
                    f"{member.tag} partition {name} name",
                    planned[number]["name"],
                    partition["label"],
                )
                check(
                    f"{member.tag} partition {name} type",
                    planned[number]["type"],
                    partition["type"],
                )
    # The ESP: formatted and mounted as the install does.
    for member, step in zip(spec.members, _steps(plan, "format-esp"), strict=True):
        esp = tree["disk"][member.tag]["content"]["partitions"]["ESP"]["content"]
        check(
            f"{member.tag} ESP mkfs",
            list(step.argv),
            [f"mkfs.{esp['format']}", *esp["extraArgs"], esp["device"]],
        )
        mkfs = [c for c in commands if c[:1] == [step.argv[0]] and c[-1] == esp["device"]]
        check(f"{member.tag} ESP mkfs in disko's script", [list(step.argv)], mkfs)
    for member, step in zip(spec.members, _steps(plan, "mount-esp"), strict=True):
        esp = tree["disk"][member.tag]["content"]["partitions"]["ESP"]["content"]
        target = step.argv[-1].removeprefix(spec.root) or "/"
        check(f"{member.tag} ESP mount point", target, esp["mountpoint"])
        check(f"{member.tag} ESP mount options", step.argv[4].split(","), esp["mountOptions"])
    # LUKS: format arguments, open arguments, mapper names, the key file.
    pool_members: list[object] = []
    for member in spec.members:
        content = _data_contents(tree, member)
        formats = [s for s in _steps(plan, "luks-format") if member.data_partuuid_device in s.argv]
        opens = [s for s in _steps(plan, "luks-open") if member.data_partuuid_device in s.argv]
        check(f"{member.tag} LUKS container", bool(formats), content["type"] == "luks")
        if content["type"] == "luks" and formats and opens:
            argv = list(formats[0].argv)
            options = argv[2 : argv.index("--key-file=-")]
            check(f"{member.tag} luksFormat device", argv[-1], content["device"])
            check(f"{member.tag} luksFormat arguments", options, content["extraFormatArgs"])
            formatted = [
                c
                for c in commands
                if c[:3] == ["cryptsetup", "-q", "luksFormat"] and c[3] == argv[-1]
            ]
            check(
                f"{member.tag} luksFormat in disko's script",
                [options],
                [c[4 : c.index("--key-file")] for c in formatted],
            )
            check(f"{member.tag} passphrase file", KEY_FILE, content["passwordFile"])
            argv = list(opens[0].argv)
            check(f"{member.tag} mapper name", argv[-1], content["name"])
            opened = argv[2 : argv.index("--key-file=-")]
            disko_open = ["--allow-discards"] if content["settings"].get("allowDiscards") else []
            check(
                f"{member.tag} open arguments",
                sorted(opened),
                sorted([*disko_open, *content["extraOpenArgs"]]),
            )
            check(
                f"{member.tag} open bypasses workqueues",
                False,
                bool(content["settings"].get("bypassWorkqueues")),
            )
            content = content["content"]
        check(f"{member.tag} pool member", "zfs", content["type"])
        check(f"{member.tag} pool member's pool", pool, content.get("pool"))
        pool_members.append(content.get("device"))
    # The pool: members, topology, -o and -O properties, the key at creation.
    (create_pool,) = _steps(plan, "create-pool")
    pool_argv = list(create_pool.argv)
    vdevs = pool_argv[pool_argv.index(pool) + 1 :]
    zpool = tree["zpool"][pool]
    check("pool topology", spec.topology, vdevs[0] if spec.topology else None)
    check("pool mode", spec.topology or "", zpool["mode"])
    check("pool members", vdevs[1:] if spec.topology else vdevs, pool_members)
    echoed = [c[1] for c in commands if c[:1] == ["echo"] and c[-1].endswith(f"/zfs_{pool}")]
    check("pool members in disko's script", pool_members, echoed)
    check("pool properties (-o)", _pairs(pool_argv, "-o"), zpool["options"])
    planned_o = _pairs(pool_argv, "-O")
    created_o = dict(planned_o)
    hook = ""
    if planned_o.get("keylocation") == "prompt":
        created_o["keylocation"] = KEY_LOCATION
        hook = f"zfs set keylocation=prompt {pool}"
    check("root file system properties (-O)", created_o, zpool["rootFsOptions"])
    check("the pool's postCreateHook", hook, zpool["postCreateHook"])
    host_id = " && ".join(
        shlex.join(s.argv) for s in plan.steps if s.id in ("hostid-write", "hostid")
    )
    check("host id before the pool (preCreateHook)", host_id, zpool["preCreateHook"])
    before = create.find(host_id)
    check("host id in disko's script, before zpool create", True,
          0 <= before < create.find("zpool create"))  # fmt: skip
    (made_pool,) = [c for c in commands if c[:3] == ["zpool", "create", "-f"]] or [[]]
    check("zpool create -o in disko's script", _pairs(pool_argv, "-o"), _pairs(made_pool, "-o"))
    check("zpool create -O in disko's script", created_o, _pairs(made_pool, "-O"))
    if hook:
        check("keylocation=prompt in disko's script", True, hook.split() in commands)
    # Datasets: each one, each property, its mount point; @blank of the rolled-back ones.
    planned_datasets = {
        s.argv[-1]: _pairs(s.argv, "-o")
        for s in plan.steps
        if s.argv[:3] == ("zfs", "create", "-p")
    }
    disko_datasets = {
        f"{pool}/{name}": entry for name, entry in zpool["datasets"].items() if name != "__root"
    }
    check("datasets", sorted(planned_datasets), sorted(disko_datasets))
    made_datasets = {c[3]: _pairs(c, "-o") for c in commands if c[:3] == ["zfs", "create", "-up"]}
    mounts = {
        s.argv[3]: s.argv[4].removeprefix(spec.root) or "/"
        for s in plan.steps
        if s.argv[:3] == ("mount", "-t", "zfs")
    }
    for name, properties in planned_datasets.items():
        entry = disko_datasets.get(name, {})
        for prop, value in properties.items():
            check(f"dataset {name} {prop}", value, entry.get("options", {}).get(prop))
        check(f"dataset {name} properties", properties, entry.get("options"))
        check(f"dataset {name} in disko's script", properties, made_datasets.get(name))
        check(f"dataset {name} mount point", mounts.get(name), entry.get("mountpoint"))
    snapshots = [s for s in plan.steps if s.argv[:2] == ("zfs", "snapshot")]
    blank = {d.full_name(pool) for d in datasets if d.rolled_back}
    check("rolled-back datasets", sorted(blank), sorted(s.argv[2].split("@")[0] for s in snapshots))
    for step in snapshots:
        dataset = step.argv[2].split("@")[0]
        entry = disko_datasets.get(dataset, {})
        guarded = f"{shlex.join(step.probe or ())} >/dev/null 2>&1 || {shlex.join(step.argv)}"
        check(f"@blank of {dataset}", guarded, entry.get("postCreateHook"))
        check(f"@blank of {dataset} in disko's script", True, guarded in create)
    for name, entry in disko_datasets.items():
        if name not in blank:
            check(f"dataset {name} has no hook", "", entry.get("postCreateHook"))
    # disko's mount script mounts what the install's mount steps mount, where (its root
    # is /mnt, the install's spec.root).
    planned_mounts = sorted(
        (s.argv[-2], s.argv[-1].removeprefix(spec.root).rstrip("/") or "/")
        for s in plan.steps
        if s.argv[:1] == ("mount",)
    )
    made_mounts = sorted(
        (c[1], c[2].removeprefix(DISKO_ROOT).rstrip("/") or "/")
        for c in script_commands(evaluated["mount"])
        if c[:1] == ["mount"] and len(c) > 2
    )
    check("mounts (device, mount point)", planned_mounts, made_mounts)
    return found


#: Where disko's mount script mounts the new system (disko's rootMountPoint default).
DISKO_ROOT = "/mnt"


def _sgdisk_partitions(words: Sequence[str]) -> dict[int, dict[str, str]]:
    """sgdisk's ``--new``, ``--typecode``, ``--partition-guid`` and ``--change-name``
    options by partition number."""
    fields = {
        "--new": "new",
        "--typecode": "type",
        "--partition-guid": "guid",
        "--change-name": "name",
    }
    found: dict[int, dict[str, str]] = {}
    for word in words:
        flag, _, value = word.partition("=")
        if flag in fields:
            number, _, rest = value.partition(":")
            found.setdefault(int(number), {})[fields[flag]] = rest
    return found


def sgdisk_runs(plan: Plan, create: str, member: Member) -> tuple[list[list[str]], list[list[str]]]:
    """The sgdisk commands that partition ``member``'s disk: the install's (its
    ``partition`` step) and disko's (its create script's, the commands that create)."""
    (step,) = [s for s in _steps(plan, "partition") if member.disk in s.argv]
    made = [
        c
        for c in script_commands(create)
        if c[:1] == ["sgdisk"] and member.disk in c and any(w.startswith("--new=") for w in c)
    ]
    return [list(step.argv)], made


def partition_tables(
    commands: Sequence[Sequence[str]], disk: str, image: Path, size: int = 64 * 1024**3
) -> dict[int, str]:
    """Run ``commands`` (sgdisk's, naming ``disk``) on a new sparse ``image`` of ``size``
    bytes instead, then read back each partition (``sgdisk --info``): its type, GUID,
    first and last sector, attributes and name, by number."""
    with image.open("wb") as file:
        file.truncate(size)
    for command in commands:
        argv = [str(image) if word == disk else word for word in command]
        subprocess.run(argv, check=True, capture_output=True)
    listed = subprocess.run(
        ["sgdisk", "--print", str(image)], check=True, capture_output=True, text=True
    ).stdout
    numbers = [int(line.split()[0]) for line in listed.splitlines() if re.match(r"\s+\d+\s", line)]
    return {number: _info(image, number) for number in numbers}


def _info(image: Path, number: int) -> str:
    return subprocess.run(
        ["sgdisk", f"--info={number}", str(image)], check=True, capture_output=True, text=True
    ).stdout
