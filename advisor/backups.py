"""Backups from the threat model: what may be sent where, and how.

Pure: plain data in, plain data out. The policy (:func:`send_policy`) says whether a
dataset may go to a target and whether it goes raw; :func:`nix_fragments` writes it
into the NixOS configuration as ``services.sanoid`` (the snapshots) and
``services.syncoid`` (the replication); :func:`plan_transfers` turns the datasets a
pool has and what a target already holds into the sends ``advisor backup`` runs
(:mod:`advisor.backup`).

What is backed up is the layout's ``<pool>/safe`` branch, recursively: ``safe/home``,
``safe/persist`` and the layout file's datasets below ``safe/``
(:mod:`advisor.datasets`: nothing under ``local`` is backed up; the root is wiped at
every boot and the Nix store is rebuilt from the configuration). On a target it keeps
its name below the target's dataset: ``rpool/safe/home`` to ``tank/laptop/safe/home``.

The rule (docs/backup.md): a natively encrypted dataset is always sent raw
(``zfs send -w``): the target stores ciphertext and never needs the key, and raw only
is also what the native encryption bug record advises (docs/threat-model.md,
``zfs-native-bug-history``). A dataset ZFS does not encrypt (one on LUKS) can only be
sent as plaintext, so it may go to a trusted target only; to an untrusted one it is
refused, with the ways out.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from advisor import nix, validate
from advisor.errors import UsageError
from advisor.models import AttrPath, NixFragment

#: The branch of the pool that is backed up (:mod:`advisor.datasets`).
BACKED_UP_BRANCH = "safe"
#: How far a backup target is trusted (``--backup-trust``, ``advisor backup
#: --trusted``/``--untrusted``): an untrusted one must never read what it stores.
TRUST_CHOICES = ("trusted", "untrusted")
#: The answer of the assessment's ``offsite_backups`` question that makes a target
#: trusted; any other (``untrusted``, ``none``, no answer) leaves the safe default.
TRUSTED_ANSWER = "trusted"
#: What ``advisor backup`` names its snapshots: ``advisor-20261205-021500`` (UTC).
SNAPSHOT_PREFIX = "advisor-"
#: The sanoid template the configuration defines for the backed-up datasets.
SANOID_TEMPLATE = "advisor"
#: How many snapshots of each period sanoid keeps on this machine.
SANOID_POLICY: Mapping[str, int | bool] = {
    "hourly": 24,
    "daily": 30,
    "monthly": 6,
    "yearly": 0,
    "autosnap": True,
    "autoprune": True,
}
#: Where the syncoid service keeps its SSH key and known_hosts (the module's user's
#: home and StateDirectory): kept on /persist, as the root is wiped at every boot.
SYNCOID_HOME = "/var/lib/syncoid"


@dataclass(frozen=True)
class Target:
    """Where backups go: ``dataset`` on ``host`` over SSH (as ``user``, else ssh's
    default), or on a pool of this machine when ``host`` is ``None``."""

    dataset: str
    host: str | None = None
    user: str | None = None

    @property
    def remote(self) -> bool:
        return self.host is not None

    @property
    def pool(self) -> str:
        return self.dataset.split("/", 1)[0]

    @property
    def login(self) -> str | None:
        """``user@host`` (or ``host``) for ssh, or ``None`` for a local pool."""
        if self.host is None:
            return None
        return f"{self.user}@{self.host}" if self.user else self.host

    def below(self, name: str) -> str:
        """The dataset ``name`` (below the source pool: ``safe/home``) on the target."""
        return f"{self.dataset}/{name}"

    def spec(self, name: str = "") -> str:
        """The target (or the dataset ``name`` on it) as syncoid writes it:
        ``user@host:tank/laptop/safe``."""
        dataset = self.below(name) if name else self.dataset
        return f"{self.login}:{dataset}" if self.login else dataset


def parse_target(value: str, option: str = "--backup-target") -> Target:
    """The :class:`Target` ``value`` names (``[user@]host:pool/path`` or ``pool/path``);
    a :class:`UsageError` naming ``option`` when it is not one."""
    validate.backup_target(value, option)
    login, _, dataset = value.rpartition(":")
    if not login:
        return Target(dataset)
    user, _, host = login.rpartition("@")
    return Target(dataset, host, user or None)


def trust(value: str | None, option: str = "--backup-trust") -> bool:
    """``True`` for ``"trusted"``, ``False`` for ``"untrusted"`` and ``None`` (not said:
    the safe default); a :class:`UsageError` otherwise."""
    if value is None:
        return False
    if value not in TRUST_CHOICES:
        raise UsageError(f"{option} {value!r}: choose {' or '.join(TRUST_CHOICES)}")
    return value == "trusted"


def trust_from_answers(answers: Mapping[str, object]) -> str:
    """The trust an assessment's answers give a backup target: ``"trusted"`` when
    ``offsite_backups`` is ``trusted``, else ``"untrusted"`` (the safe default)."""
    return "trusted" if answers.get("offsite_backups") == TRUSTED_ANSWER else "untrusted"


class BackupRefused(UsageError):
    """A dataset may not go to this target as it would be sent: exit status 2, with the
    reason and the ways out."""


def refusal(datasets: Sequence[str], target: str) -> BackupRefused:
    """Why plaintext ``datasets`` may not go to the untrusted ``target``, and what to do."""
    names = ", ".join(datasets)
    return BackupRefused(
        f"refused: {names} {'is' if len(datasets) == 1 else 'are'} not encrypted by ZFS "
        f"(the pool is on LUKS, which decrypts below ZFS), so a zfs send of "
        f"{'it' if len(datasets) == 1 else 'them'} is plaintext, and {target} is an "
        "untrusted target that must never read your data. Ways out: (1) put what goes "
        "offsite in a natively encrypted dataset inside the LUKS pool (zfs create -o "
        "encryption=on -o keyformat=passphrase ...) and back that dataset up alone, raw "
        "(zfs send -w, syncoid --sendoptions=w): the layering "
        "docs/threat-model.md#layering describes; (2) back up to a target you "
        "trust (--trusted, --backup-trust trusted); (3) encrypt on this side with a "
        "backup tool of its own (restic, borg) instead of zfs send. See docs/backup.md"
    )


@dataclass(frozen=True)
class SendPolicy:
    """How one dataset is sent: ``raw`` (``zfs send -w``) or as plaintext."""

    raw: bool
    why: str


def send_policy(*, encrypted: bool, trusted: bool, name: str, target: str) -> SendPolicy:
    """How ``name`` is sent to ``target``: raw when ZFS ``encrypted`` it (whatever the
    trust); as plaintext when it is not and the target is ``trusted``; else a
    :class:`BackupRefused` (:func:`refusal`)."""
    if encrypted:
        return SendPolicy(
            True,
            "natively encrypted: sent raw (zfs send -w), the target never holds the key",
        )
    if trusted:
        return SendPolicy(False, "not encrypted by ZFS: sent as plaintext to a trusted target")
    raise refusal([name], target)


def nix_fragments(
    pool: str, target: Target | None, *, trusted: bool, native: bool
) -> list[NixFragment]:
    """``services.sanoid`` and ``services.syncoid`` for backing ``<pool>/safe`` up to
    ``target`` (none when ``target`` is ``None``). ``native``: the backend encrypts the
    pool natively (:attr:`~advisor.models.Backend.native_encryption`), so syncoid sends
    raw; when it does not, an untrusted target is a :class:`BackupRefused`.

    Options as declared in nixpkgs ``nixos/modules/services/backup/sanoid.nix`` and
    ``syncoid.nix`` (read at 03a362fe87): sanoid ``templates.<name>`` (hourly, daily,
    monthly, yearly: ``nullOr ints.unsigned``; autosnap, autoprune: ``nullOr bool``),
    ``datasets.<name>.useTemplate`` (configured template names) and ``recursive``
    (``bool`` or ``"zfs"``: one atomic recursive snapshot); syncoid
    ``commands.<name>.target`` (``str``, ``pool/dataset`` or ``user@server:pool/dataset``),
    ``recursive`` (enable), ``sendOptions`` and ``recvOptions`` (``separatedString " "``,
    options without their dashes: ``w`` is ``zfs send -w``, ``u`` is ``zfs receive -u``).
    """
    if target is None:
        return []
    check_other_pool(target, pool)
    source = f"{pool}/{BACKED_UP_BRANCH}"
    raw = send_policy(encrypted=native, trusted=trusted, name=source, target=target.spec()).raw
    command: dict[str, object] = {
        "target": target.spec(BACKED_UP_BRANCH),
        "recursive": True,
        # Not mounted on the target: a raw dataset cannot be without its key, and a
        # plaintext one must not shadow the target's own mounts.
        "recvOptions": "u",
    }
    if raw:
        # syncoid sends plaintext unless told (sanoid issues 548 and 612).
        command["sendOptions"] = "w"
    settings: dict[AttrPath, object] = {
        ("services", "sanoid", "enable"): True,
        ("services", "sanoid", "templates", SANOID_TEMPLATE): dict(SANOID_POLICY),
        ("services", "sanoid", "datasets", source): {
            "useTemplate": [SANOID_TEMPLATE],
            "recursive": "zfs",
        },
        ("services", "syncoid", "enable"): True,
        ("services", "syncoid", "commands", source): command,
    }
    if target.remote:
        # ssh's key and known_hosts live in the syncoid user's home, which the
        # ephemeral root would lose at every boot (syncoid.nix: home and
        # StateDirectory /var/lib/syncoid, mode 700).
        settings[("environment", "persistence", "/persist", "directories")] = [
            {"directory": SYNCOID_HOME, "user": "syncoid", "group": "syncoid", "mode": "0700"}
        ]
    return [NixFragment("Backups", settings)]


@dataclass(frozen=True)
class SourceDataset:
    """A dataset of the pool to back up, as ``zfs list`` reports it: its full name,
    whether ZFS encrypts it, and its snapshots' names (after the ``@``), oldest first."""

    name: str
    encrypted: bool
    snapshots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transfer:
    """One send: ``source@snapshot`` to ``target`` (a dataset on the target), raw or not,
    in full or from ``base`` (a snapshot both sides hold, ``-I``)."""

    source: str
    target: str
    snapshot: str
    raw: bool
    base: str | None
    why: str

    def send_argv(self) -> tuple[str, ...]:
        """``zfs send`` of this transfer."""
        raw = ("-w",) if self.raw else ()
        base = ("-I", f"@{self.base}") if self.base else ()
        return ("zfs", "send", *raw, *base, f"{self.source}@{self.snapshot}")

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "snapshot": self.snapshot,
            "raw": self.raw,
            "incremental_from": self.base,
            "why": self.why,
        }


def receive_argv(target: Target, dataset: str) -> tuple[str, ...]:
    """``zfs receive -u dataset``, run on the target: through ssh for a remote one (its
    remote command is one shell line, so each word is quoted; the names are checked
    already). ``BatchMode`` makes a missing key or an unknown host key an error, not a
    prompt nobody sees."""
    receive = ("zfs", "receive", "-u", dataset)
    return on_target(target, receive)


def on_target(target: Target, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` run on ``target``'s host: as it is for a local pool, else through ssh."""
    if target.login is None:
        return tuple(argv)
    return ("ssh", "-o", "BatchMode=yes", target.login, shlex.join(argv))


def target_listing_argv(target: Target) -> tuple[str, ...]:
    """What the target already holds below its dataset: file systems, volumes and
    snapshots, by name (read by :func:`target_state`)."""
    listing = ("zfs", "list", "-H", "-o", "name", "-t", "all", "-r", target.dataset)
    return on_target(target, listing)


def target_state(listing: str, target: Target) -> dict[str, tuple[str, ...]]:
    """Each dataset below ``target`` in a ``zfs list -o name`` ``listing``, with its
    snapshots' names in the listing's order."""
    state: dict[str, list[str]] = {}
    for line in listing.splitlines():
        name = line.strip()
        dataset, at, snapshot = name.partition("@")
        state.setdefault(dataset, [])
        if at:
            state[dataset].append(snapshot)
    return {dataset: tuple(snaps) for dataset, snaps in state.items()}


def check_other_pool(target: Target, pool: str) -> None:
    """Raise :class:`UsageError` when ``target`` is a dataset of ``pool`` itself."""
    if not target.remote and target.pool == pool:
        raise UsageError(
            f"the backup target {target.spec()} is in the pool being backed up ({pool}): a "
            "backup must be on another pool, ideally on another machine"
        )


def snapshot_name(stamp: str) -> str:
    """The snapshot ``advisor backup`` takes, from a UTC ``YYYYmmdd-HHMMSS`` stamp."""
    return f"{SNAPSHOT_PREFIX}{stamp}"


def plan_transfers(
    pool: str,
    sources: Sequence[SourceDataset],
    target: Target,
    held: Mapping[str, Sequence[str]],
    snapshot: str,
    *,
    trusted: bool,
) -> list[Transfer]:
    """The sends that bring ``target`` up to ``snapshot`` (taken, or about to be, on every
    one of ``sources``, parents first), given what it ``held`` (:func:`target_state`).

    Refuses before anything is sent: a plaintext dataset to an untrusted target
    (:class:`BackupRefused`, every such dataset named), a target in the source pool
    (no backup), and a dataset the target holds with no snapshot in common (receiving
    over it would need ``-F``, which destroys what is there: a :class:`UsageError`)."""
    check_other_pool(target, pool)
    if target.dataset not in held:
        raise UsageError(
            f"{target.spec()} does not exist: create it on the target first (zfs create -o "
            f"canmount=off -o mountpoint=none {target.dataset}), and for a user other than "
            "root allow it to receive there (zfs allow USER create,mount,receive "
            f"{target.dataset})"
        )
    if not trusted:
        plain = [source.name for source in sources if not source.encrypted]
        if plain:
            raise refusal(plain, target.spec())
    transfers = []
    for source in sources:
        name = source.name.removeprefix(f"{pool}/")
        destination = target.below(name)
        policy = send_policy(
            encrypted=source.encrypted, trusted=trusted, name=source.name, target=target.spec()
        )
        base = None
        if destination in held:
            common = [snap for snap in source.snapshots if snap in held[destination]]
            if not common:
                raise UsageError(
                    f"{target.spec(name)} exists but has no snapshot in common with "
                    f"{source.name}: receiving over it would destroy it. Give another "
                    "target, or destroy that dataset on the target yourself"
                )
            base = common[-1]
            if base == snapshot:
                continue  # already there
        transfers.append(Transfer(source.name, destination, snapshot, policy.raw, base, policy.why))
    return transfers


def fragment_text(fragments: Sequence[NixFragment]) -> str:
    """``fragments`` as a NixOS module to paste into ``configuration.nix`` or to import
    from it (``advisor backup --nix``), one ``path = value;`` line per setting."""
    body = []
    for fragment in fragments:
        body.append(nix.comment(fragment.section, 1))
        for path, item in fragment.settings.items():
            body.append(f"{nix.INDENT}{nix.attr_path(path)} = {nix.value(item, 1)};\n")
    header = nix.comment(
        "Backups, generated by 'advisor backup --nix' (docs/backup.md). Import it from\n"
        "configuration.nix (imports = [ ./backup.nix ];) or paste its lines there."
    )
    return header + "{ config, lib, pkgs, ... }:\n\n{\n" + "".join(body) + "}\n"
