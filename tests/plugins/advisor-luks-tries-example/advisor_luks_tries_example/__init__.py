"""Example third-party backend built on the built-in ``luks``: ZFS on a labelled LUKS2
container that allows three passphrase tries at boot.

What it shows (docs/plugins.md, "Building on a built-in backend"):

- its own axis (``console_guessing``) and optional question (``console_access``), and
  a capability that cites its own source (``url``);
- a subclass of :class:`advisor_luks.LuksBackend` that keeps luks's steps, fragments,
  warnings and capabilities, and adds to them: a crypttab option (``tries=3``, through
  ``crypttabExtraOpts``) and an install step (a LUKS2 label, ``cryptsetup config``);
- a refusal of the user's input: ``crypttabExtraOpts`` is used by systemd's stage 1
  only, so ``--initrd scripted`` is refused with :class:`advisor.plugin.PluginRefusal`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from advisor.plugin import (
    Answers,
    Axis,
    Backend,
    Capability,
    Choice,
    InstallSpec,
    Layout,
    LayoutMember,
    Member,
    PluginRefusal,
    Question,
    Rating,
    Settings,
    Step,
    SystemFacts,
    hookimpl,
)
from advisor_luks import LuksBackend

#: The passphrase tries systemd-cryptsetup allows at boot (crypttab(5): ``tries=``).
TRIES = 3
#: The LUKS2 label the container gets, to tell it from other LUKS disks (lsblk, blkid).
LABEL = "advisor-root"


class LuksTriesBackend(LuksBackend):
    name = "luks-tries"
    summary = f"ZFS on a labelled LUKS2 container that allows {TRIES} passphrase tries at boot"
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        **LuksBackend.capabilities,
        "console_guessing": Capability(
            Rating.GOOD,
            f"systemd-cryptsetup stops asking after {TRIES} wrong passphrases, so each "
            "guess at the console costs a reboot (an attacker with the disk is not slowed).",
            "crypttab(5) tries=",
            url="https://www.freedesktop.org/software/systemd/man/latest/crypttab.html",
        ),
    }

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if answers.get("console_access") != "yes":
            return "only worth it when someone may guess passphrases at the console"
        return None

    def check_settings(self, settings: Settings) -> None:
        # nixpkgs luksroot.nix: crypttabExtraOpts is "Only used with systemd stage 1".
        if settings.initrd != "systemd":
            raise PluginRefusal(
                f"--initrd {settings.initrd}: the tries limit is a crypttab option, which "
                "only the systemd initrd reads; use --initrd systemd"
            )

    def luks_device(self, layout: Layout, member: LayoutMember) -> dict[str, object]:
        device = super().luks_device(layout, member)
        # Added to luks's own options (the unlock method's, nofail on several disks).
        options = device.get("crypttabExtraOpts", [])
        assert isinstance(options, list)  # luks_device makes it a list of strings
        device["crypttabExtraOpts"] = [*options, f"tries={TRIES}"]
        return device

    def provision_steps(self, spec: InstallSpec, member: Member) -> Sequence[Step]:
        label = Step(
            "luks-label",
            f"Label the LUKS container {LABEL}",
            ("cryptsetup", "config", "--label", LABEL, member.data_partuuid_device),
        )
        return (self.format_step(spec, member), label, self.open_step(spec, member))


@hookimpl
def advisor_axes() -> Sequence[Axis]:
    return (
        Axis(
            "console_guessing",
            "Console guessing",
            "Someone at the keyboard tries passphrases at the boot prompt.",
        ),
    )


@hookimpl
def advisor_questions() -> Sequence[Question]:
    return (
        Question(
            "console_access",
            "Could someone you do not trust type at this machine's boot prompt?",
            "A shared office, a machine left at a desk: a limit on passphrase tries at boot "
            "makes each guess cost a reboot.",
            (Choice("no", "No"), Choice("yes", "Yes", {"console_guessing": 3})),
            default="no",
            optional=True,
        ),
    )


@hookimpl
def advisor_backends() -> Sequence[Backend]:
    return (LuksTriesBackend(),)
