"""The ``advisor`` command line.

Each command is a small function that wires the pure core (answers, assessment) to its
effects (plugins, prompts, probes, output). Modules other than argparse are imported
inside the commands that need them, so ``advisor --help`` stays fast.

Exit status: 0 success; 1 a failure (``plugins --check`` found a broken plugin, strict
plugin loading failed, a plugin's code failed); 2 bad input (arguments, answers files,
missing answers without a terminal, a plugin's refusal); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor import __version__
from advisor.errors import AdvisorError, UsageError

if TYPE_CHECKING:
    from advisor.install.disks import Disk
    from advisor.install.plan import Plan
    from advisor.pluginmanager import LoadedPlugins


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``command`` only that command's options: the layout's
    settings (:mod:`advisor.settings`) are then declared only for the command that takes
    them, so ``advisor --help`` and ``assess`` do not import them."""
    parser = argparse.ArgumentParser(
        prog="advisor",
        description=(
            "Choose the encryption design for NixOS on ZFS from your threat model, and install it."
        ),
        epilog="Run 'advisor COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"advisor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    assess = commands.add_parser(
        "assess",
        help="answer the threat-model questionnaire and get a recommendation",
        description=(
            "Rank the installed backends for your threat model. Asks the questions on a "
            "terminal; otherwise takes answers from --answers and/or --profile "
            "(a file's answers override the profile's)."
        ),
    )
    assess.add_argument(
        "--answers", metavar="FILE", type=Path, help="TOML or JSON table of question id = value"
    )
    assess.add_argument("--profile", metavar="NAME", help="start from a built-in example profile")
    assess.add_argument("--json", action="store_true", help="print the assessment as JSON")
    assess.add_argument(
        "--save", metavar="FILE", type=Path, help="write the assessment for 'advisor install'"
    )
    assess.set_defaults(run=cmd_assess)

    questions = commands.add_parser(
        "questions", help="list every question, plugins' included, with allowed values"
    )
    questions.add_argument("--json", action="store_true", help="print JSON")
    questions.set_defaults(run=cmd_questions)

    profiles = commands.add_parser("profiles", help="list the built-in example profiles")
    profiles.add_argument("--json", action="store_true", help="print JSON")
    profiles.set_defaults(run=cmd_profiles)

    config = commands.add_parser(
        "config",
        help="generate configuration.nix and flake.nix for an existing layout",
        description=(
            "Write configuration.nix and flake.nix for a disk that is already partitioned, "
            "encrypted and has its pool. Touches no disk. The password is read from "
            "--password-file, or asked twice at a terminal."
        ),
    )
    config.add_argument("--out", metavar="DIR", type=Path, required=True, help="where to write")
    config.add_argument(
        "--data-device",
        metavar="PATH",
        required=True,
        action="append",
        help="the LUKS or ZFS partition, a /dev/disk/by-* path; once per disk of the pool",
    )
    config.add_argument(
        "--esp-device",
        metavar="PATH",
        required=True,
        action="append",
        help="the EFI system partition; once per disk, in the order of --data-device",
    )
    config.add_argument(
        "--swap-device",
        metavar="PATH",
        action="append",
        default=[],
        help="a swap partition, encrypted with a new random key at each boot; once per "
        "disk, in the same order (default: no swap)",
    )
    config.add_argument(
        "--header-backup",
        metavar="FILE",
        action="append",
        default=[],
        help="where a disk's LUKS header is backed up, for 'advisor check' and 'advisor "
        "rekey' to find; once per disk, in the same order (default: none)",
    )
    if command in (None, "config"):
        _layout_arguments(config, "config")
    config.add_argument(
        "--password-file", metavar="FILE", type=Path, help="the user's password (plain text)"
    )
    config.add_argument(
        "--password-stdin", action="store_true", help="read the user's password from stdin"
    )
    config.add_argument(
        "--from-assessment", metavar="FILE", type=Path, help="an 'advisor assess --save' file"
    )
    config.add_argument(
        "--persist-root",
        metavar="DIR",
        type=Path,
        help="the target's /persist as mounted now (for generated keys), e.g. /mnt/persist",
    )
    config.add_argument("--force", action="store_true", help="replace existing files")
    config.add_argument("--json", action="store_true", help="print what was written as JSON")
    config.set_defaults(run=cmd_config)

    export = commands.add_parser(
        "export",
        help="hand the layout to other tools: 'export disko' for disko and nixos-anywhere",
        description="Write the layout 'advisor install' makes for other tools to make it.",
    )
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)
    disko = targets.add_parser(
        "disko",
        help="disko.nix, the configuration and a flake for nixos-anywhere",
        description=(
            "Write disko.nix (the disks laid out exactly as 'advisor install' lays them "
            "out), configuration.nix and advisor.json (as 'advisor config' writes them) and "
            "flake.nix with disko's module, ready for 'nixos-anywhere --flake .#HOST "
            "--disk-encryption-keys /tmp/secret.key FILE root@HOST'. Touches no disk: "
            "the disks are named by their /dev/disk/by-id paths on the target machine. "
            "The user's password is read from --password-file, or asked twice at a "
            "terminal, and written only as a yescrypt hash. See docs/disko.md."
        ),
    )
    _export_arguments(disko, command)
    disko.set_defaults(run=cmd_export_disko)

    disks = commands.add_parser(
        "disks", help="list disks, whether each can be installed to, and why not"
    )
    disks.add_argument("--json", action="store_true", help="print JSON")
    disks.set_defaults(run=cmd_disks)

    for name in ("install", "plan"):
        install = commands.add_parser(
            name,
            help=(
                "partition, encrypt and create the pool on a disk, then write the config"
                if name == "install"
                else "print the install plan as a shell script (same as install --dry-run)"
            ),
            description=(
                "Erase DISK and install the chosen backend's layout: GPT (ESP + data), "
                "encryption, pool, datasets, mounts under --root and the NixOS "
                "configuration. Every step is journaled: --resume continues an "
                "interrupted install. Review it first with 'advisor plan'."
                if name == "install"
                else "Print, as a POSIX shell script, every command 'advisor install' would "
                "run with these options, in order, destructive steps marked. Touches "
                "nothing and needs neither root nor EFI, but checks the disk as install "
                "does. The partition GUIDs and host id are new at each run: --save FILE "
                "keeps them, and 'advisor install --plan FILE' runs exactly that plan. "
                "--plan FILE and --resume print a saved plan or the one an install is "
                "running."
            ),
        )
        if command in (None, name):
            _install_arguments(install, plan=name == "plan")
        install.set_defaults(run=cmd_install, dry_run=name == "plan")

    finish = commands.add_parser(
        "finish",
        help="after install: nixos-install, keep what must persist, check, export the pool",
        description=(
            "The steps between 'advisor install' and the first boot, journaled and "
            "resumable: run nixos-install (when it is there), copy what it wrote that "
            "must outlive the first rollback (flake.lock, the uid and gid maps) to "
            "/persist, run 'advisor check', unmount, export the pool, and check again."
        ),
    )
    finish.add_argument(
        "--root", metavar="DIR", default="/mnt", help="where the install mounted the system"
    )
    finish.add_argument(
        "--record", metavar="FILE", type=Path, help="the layout record (default: under --root)"
    )
    finish.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="journal and log (default: /var/lib/advisor/finish-<pool>)",
    )
    finish.add_argument("--resume", action="store_true", help="continue an interrupted finish")
    finish.add_argument("--stop-after", metavar="STEP", help="stop after the step with this id")
    finish.add_argument(
        "--no-nixos-install",
        action="store_true",
        help="do not run nixos-install (you ran it): keep, check and export only",
    )
    finish.add_argument("--dry-run", action="store_true", help="print the steps, touch nothing")
    finish.add_argument("--json", action="store_true", help="print the outcome as JSON")
    finish.set_defaults(run=cmd_finish)

    diff = commands.add_parser(
        "diff",
        help="list what the next boot will erase, with the environment.persistence entry "
        "that would keep it",
        description=(
            "Compare the rolled-back datasets with their @blank snapshot (zfs diff) and "
            "list what the next boot will erase, grouped by the environment.persistence "
            "entry that would keep it; what is kept already is marked, and the noise every "
            "NixOS system writes at each boot is left out (docs/diff.md lists it). Needs "
            "root, or 'zfs allow' of diff."
        ),
    )
    diff.add_argument(
        "--root",
        metavar="DIR",
        type=Path,
        default=Path("/"),
        help="the installed system's root (default: /, the running system; /mnt from the "
        "installer)",
    )
    diff.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="the layout record (default: found under --root)",
    )
    diff.add_argument(
        "--persisted",
        metavar="PATH",
        action="append",
        default=[],
        help="a path kept by an environment.persistence entry of your own (repeatable)",
    )
    diff.add_argument(
        "--layout",
        metavar="FILE",
        type=Path,
        help="a copy of the layout file the record names, if it is no longer at that path",
    )
    diff.add_argument("--all", action="store_true", help="list the noise too")
    output = diff.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument(
        "--nix", action="store_true", help="print the suggested entries as a NixOS module"
    )
    diff.set_defaults(run=cmd_diff)

    check = commands.add_parser(
        "check",
        help="is the installed system going to boot, and does it match its threat model?",
        description=(
            "Check the system under --root against its layout record (advisor.json) and "
            "its configuration.nix: device paths, boot.zfs.devNodes, the host id, the pool "
            "exported or imported cleanly, @blank and the rollback's order, /persist "
            "neededForBoot, the keys on /persist and their modes, the LUKS header backup, "
            "TRIM against the assessment. Each check says what it looked at and how to fix "
            "a failure. Exit 0 when none failed, 1 when one did, 2 for bad input. "
            "See docs/check.md."
        ),
    )
    check.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="the installed system's root: / when running it (default), /mnt from the installer",
    )
    check.add_argument(
        "--record",
        type=Path,
        help="the layout record (advisor.json) to read; by default the one under --root",
    )
    check.add_argument(
        "--before-reboot",
        action="store_true",
        help="from the installer, just before the reboot: the pool must be exported now",
    )
    check.add_argument(
        "--from-assessment",
        type=Path,
        metavar="FILE",
        help="a saved assessment (advisor assess --save): TRIM must be as it answered",
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument(
        "--summary",
        action="store_true",
        help="print only the warnings and failures, with their fixes, and the counts",
    )
    check.set_defaults(run=cmd_check)

    rekey = commands.add_parser(
        "rekey",
        help="change the disk passphrase of an installed system, on every disk",
        description=(
            "Change the disk passphrase on every disk of the installed layout (read from "
            "its record, advisor.json), never leaving a moment where no passphrase opens "
            "it: LUKS adds the new passphrase everywhere, tests it, then removes the old "
            "one and takes the header backups anew; zfs-native runs zfs change-key. "
            "Journaled: --resume continues an interrupted rekey. The passphrases are read "
            "from files, or asked at a terminal. See docs/rekey.md."
        ),
    )
    rekey.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="the installed system's root (default: /, the running system; /mnt from the "
        "installer)",
    )
    rekey.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="the layout record (default: found under --root)",
    )
    rekey.add_argument(
        "--passphrase-file",
        metavar="FILE",
        type=Path,
        help="the current passphrase: FILE's first line (default: asked)",
    )
    rekey.add_argument(
        "--new-passphrase-file",
        metavar="FILE",
        type=Path,
        help="the new passphrase: FILE's first line (default: asked twice)",
    )
    rekey.add_argument(
        "--recovery-key",
        action="store_true",
        help="also add a generated recovery key to every disk (LUKS), shown once",
    )
    rekey.add_argument(
        "--recovery-key-file",
        metavar="FILE",
        type=Path,
        help="with --recovery-key: write it to this new file (0600) instead of showing it; "
        "a resume reads it back from there",
    )
    rekey.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="journal and log (default: ROOT/persist/var/lib/advisor/rekey, which survives "
        "a reboot)",
    )
    rekey.add_argument(
        "--resume", action="store_true", help="continue the interrupted rekey in --state-dir"
    )
    rekey.add_argument(
        "--dry-run", action="store_true", help="print the steps as a shell script, touch nothing"
    )
    rekey.add_argument(
        "--stop-after", metavar="STEP", help="stop after the step with this id (see --dry-run)"
    )
    rekey.add_argument(
        "--insecure-fast-kdf",
        action="store_true",
        help="cheap key derivation for the new keys, for tests only: never for a real disk",
    )
    rekey.add_argument("--json", action="store_true", help="print the result as JSON")
    rekey.set_defaults(run=cmd_rekey)

    plugins = commands.add_parser(
        "plugins",
        help="list plugins with their status and what each provides: backends, unlock methods",
        description=(
            "List every plugin. ADVISOR_DISABLE_PLUGINS=a,b skips plugins by name; "
            "ADVISOR_STRICT_PLUGINS=1 makes a broken plugin an error."
        ),
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument(
        "--check",
        action="store_true",
        help=(
            "also run every plugin's hooks and backend methods against sample layouts and "
            "install specs; exit 1 if any plugin is broken or incompatible"
        ),
    )
    plugins.set_defaults(run=cmd_plugins)

    backup = commands.add_parser(
        "backup",
        help="back up <pool>/safe to another pool now, or print its sanoid/syncoid fragment",
        description=(
            "Snapshot <pool>/safe (home, persist and your own safe/ datasets) and send it "
            "to TARGET, incrementally when the target holds an earlier snapshot. Natively "
            "encrypted datasets go raw (zfs send -w: the target never holds the key); a "
            "plaintext one (a LUKS pool) only to a trusted target. --nix prints the NixOS "
            "fragment that does it on a schedule instead. See docs/backup.md."
        ),
    )
    backup.add_argument(
        "--target",
        metavar="TARGET",
        help="user@host:pool/path (over SSH) or pool/path (a pool of this machine) "
        "(default: the configuration's --backup-target, from the layout record)",
    )
    trust = backup.add_mutually_exclusive_group()
    trust.add_argument(
        "--trusted",
        dest="trust",
        action="store_const",
        const="trusted",
        help="the target may read what it stores (plaintext sends are allowed)",
    )
    trust.add_argument(
        "--untrusted",
        dest="trust",
        action="store_const",
        const="untrusted",
        help="the target must never read it: raw sends only (the default, unless "
        "--from-assessment or the configuration's --backup-trust says otherwise)",
    )
    backup.add_argument(
        "--from-assessment",
        metavar="FILE",
        type=Path,
        help="an 'advisor assess --save' file: its offsite_backups answer says the trust",
    )
    backup.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="the installed system's root: / when running (default), /mnt from the installer",
    )
    backup.add_argument(
        "--record", metavar="FILE", type=Path, help="the layout record (default: under --root)"
    )
    backup.add_argument(
        "--nix", action="store_true", help="print the sanoid/syncoid NixOS fragment, do nothing"
    )
    backup.add_argument(
        "--dry-run", action="store_true", help="print the commands a backup would run, run none"
    )
    backup.add_argument("--json", action="store_true", help="print JSON")
    backup.set_defaults(run=cmd_backup)

    fleet = commands.add_parser(
        "fleet",
        help="write one flake for a fleet of machines from an inventory; 'fleet deploy' "
        "installs them with nixos-anywhere",
        description=(
            "Read the inventory (TOML: a [[hosts]] table per machine, [defaults] for all; "
            "docs/fleet.md) and write one flake with a nixosConfigurations entry per host "
            "and, in hosts/NAME/, its configuration.nix, advisor.json and disko.nix. No "
            "secret is written: password hashes only; the disk passphrases are read by "
            "'advisor fleet deploy'. Touches no disk."
        ),
    )
    fleet.add_argument("--inventory", metavar="FILE", type=Path, help="the inventory (required)")
    fleet.add_argument("--out", metavar="DIR", type=Path, help="where to write (required)")
    fleet.add_argument("--force", action="store_true", help="replace files that differ")
    fleet.add_argument("--json", action="store_true", help="print what was written as JSON")
    fleet.set_defaults(run=cmd_fleet)
    fleet_commands = fleet.add_subparsers(dest="fleet_command", metavar="ACTION")
    deploy = fleet_commands.add_parser(
        "deploy",
        help="install every host of the fleet with nixos-anywhere, a few at a time",
        description=(
            "Run nixos-anywhere for each host of the inventory with the flake 'advisor "
            "fleet' wrote: its disks partitioned and encrypted by disko with the passphrase "
            "its inventory names (a file, or a command's output, passed in a 0600 file "
            "removed afterwards), NixOS installed. At most --jobs hosts at once; each "
            "host's output goes to its log; a failed host does not stop the others. Exit "
            "1 when a host failed. See docs/fleet.md."
        ),
    )
    deploy.add_argument(
        "--inventory", metavar="FILE", type=Path, required=True, help="the inventory"
    )
    deploy.add_argument(
        "--flake", metavar="DIR", type=Path, required=True, help="the folder 'advisor fleet' wrote"
    )
    deploy.add_argument(
        "--host",
        metavar="NAME",
        action="append",
        default=[],
        help="deploy this host only (repeatable; default: every host)",
    )
    deploy.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        default=None,
        help="hosts deployed at once (default: 4)",
    )
    deploy.add_argument(
        "--log-dir",
        metavar="DIR",
        type=Path,
        help="one log per host there (default: a new folder in DIR-logs/ beside the flake)",
    )
    deploy.add_argument(
        "--nixos-anywhere",
        metavar="PATH",
        help="the nixos-anywhere program (default: $ADVISOR_NIXOS_ANYWHERE, else PATH's)",
    )
    deploy.add_argument(
        "--dry-run",
        action="store_true",
        help="print each host's command (where the passphrase would come from, not it)",
    )
    deploy.add_argument("--json", action="store_true", help="print the results as JSON")
    deploy.set_defaults(run=cmd_fleet_deploy)
    return parser


def _chosen_backend(args: argparse.Namespace, defaults: dict[str, Any]) -> str:
    """The backend ``--backend`` names, else the one ``--from-assessment`` recommends."""
    backend = args.backend or defaults.get("backend")
    if backend is not None:
        return str(backend)
    if args.from_assessment is not None:
        raise UsageError(
            f"{str(args.from_assessment)!r} recommends no backend (every one was ruled out): "
            "give --backend NAME"
        )
    raise UsageError("give --backend NAME, or --from-assessment FILE to use its recommendation")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), "")
    args = build_parser(command).parse_args(words)
    try:
        status: int = args.run(args)
        sys.stdout.flush()  # a write error shows here, not as a traceback at exit
    except AdvisorError as error:
        from advisor.console import error as print_error

        print_error(str(error))
        return error.exit_status
    except KeyboardInterrupt:
        sys.stderr.write("\nadvisor: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): not our error. Silence the flush at exit.
        _discard_stdout()
        return 1
    except OSError as error:
        # The last line of defence: each input is checked with its own message first.
        # This catches what no check foresaw, such as stdout on a full disk.
        from advisor.console import error as print_error

        _drop_unwritable_output()
        where = f"{error.filename}: " if error.filename else ""
        print_error(f"{where}{error.strerror or error}")
        return 1
    return status


def _drop_unwritable_output() -> None:
    """After a failed write, discard what stdout still holds if it cannot be written
    either, so the flush at exit does not fail again with a traceback."""
    try:
        sys.stdout.flush()
    except OSError:
        _discard_stdout()


def _discard_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer goes nowhere, quietly."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _load_plugins(*, report_failures: bool = True) -> LoadedPlugins:
    from advisor.console import warn
    from advisor.pluginmanager import load_plugins

    plugins = load_plugins()
    if report_failures:
        for record in plugins.failures:
            warn(
                f"plugin {record.name!r} is {record.status} and was skipped: {record.reason} "
                "(see 'advisor plugins')"
            )
    return plugins


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def cmd_assess(args: argparse.Namespace) -> int:
    from advisor.assess import answers as answers_mod
    from advisor.assess.assessment import assess
    from advisor.assess.system import probe_system
    from advisor.console import print_json, stderr_console, stdout_console

    if args.save is not None:
        _check_writable(args.save)
    plugins = _load_plugins()
    questions = plugins.questions

    answers: dict[str, str] = {}
    sources: dict[str, str] = {}
    if args.profile:
        profile = answers_mod.load_profile(args.profile)
        given = answers_mod.validate_answers(
            profile.answers, questions, f"profile {args.profile!r}"
        )
        answers.update(given)
        sources.update(dict.fromkeys(given, f"profile:{args.profile}"))
    if args.answers is not None:
        data = answers_mod.read_answers_file(args.answers)
        given = answers_mod.validate_answers(data, questions, f"answers file {str(args.answers)!r}")
        answers.update(given)
        sources.update(dict.fromkeys(given, f"file:{args.answers}"))

    system = probe_system()
    interactive = _interactive()
    missing = answers_mod.missing_questions(questions, answers, include_optional=interactive)
    if missing and not interactive:
        raise UsageError(
            f"{len(missing)} question(s) unanswered and no terminal to ask them on; "
            "give them in --answers FILE or pick a --profile:\n"
            + answers_mod.describe_missing(missing)
        )
    if missing:
        from advisor.assess.prompts import ask_missing
        from advisor.assess.report import system_summary

        console = stderr_console()
        console.print(system_summary(system))
        asked = ask_missing(questions, answers, console)
        answers.update(asked)
        sources.update(dict.fromkeys(asked, "prompt"))

    assessment = assess(
        axes=plugins.axes,
        questions=questions,
        backends=plugins.backends,
        answers=answers,
        system=system,
        unlock_methods=plugins.unlock_methods,
        answer_sources=sources,
    )
    saved_to = str(args.save) if args.save is not None else None
    if args.save is not None:
        from advisor.files import write_atomically

        text = json.dumps(assessment.to_json(saved_to), indent=2, ensure_ascii=False) + "\n"
        write_atomically(args.save, text.encode())
    if args.json:
        print_json(assessment.to_json(saved_to))
    else:
        from advisor.assess.report import render_assessment

        render_assessment(stdout_console(), assessment, saved_to)
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console

    plugins = _load_plugins()
    owners = {qid: record.name for record in plugins.records for qid in record.questions}
    if args.json:
        print_json(
            [
                {
                    "id": q.id,
                    "text": q.text,
                    "help": q.help,
                    "default": q.default,
                    "plugin": owners.get(q.id),
                    "choices": [
                        {"value": c.value, "label": c.label, "weights": dict(c.weights)}
                        for c in q.choices
                    ],
                }
                for q in plugins.questions
            ]
        )
    else:
        from advisor.assess.report import render_questions

        render_questions(stdout_console(), plugins.questions, owners)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from advisor.assess.answers import list_profiles
    from advisor.console import print_json, stdout_console

    profiles = list_profiles()
    if args.json:
        print_json(
            [{"name": p.name, "description": p.description, "answers": p.answers} for p in profiles]
        )
        return 0
    from rich.text import Text

    console = stdout_console()
    for profile in profiles:
        console.print(Text(profile.name, style="bold"))
        console.print(Text(f"  {profile.description}"))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from advisor import settings
    from advisor.assessmentfile import read_assessment
    from advisor.console import print_json, stdout_console
    from advisor.nixos.write import (
        ConfigRequest,
        assessment_defaults,
        unlock_default,
        write_configuration,
    )

    defaults = {}
    if args.from_assessment is not None:
        defaults = assessment_defaults(read_assessment(args.from_assessment))
    backend = _chosen_backend(args, defaults)
    plugins = _load_plugins()
    request = ConfigRequest(
        backend=backend,
        settings=settings.from_arguments(
            args,
            trim=defaults.get("trim"),
            ssd=defaults.get("ssd"),
            backup_trust=defaults.get("backup_trust"),
            unlock=unlock_default(defaults, backend),
        ),
        out_dir=args.out,
        data_devices=tuple(args.data_device),
        esp_devices=tuple(args.esp_device),
        swap_devices=tuple(args.swap_device),
        header_backups=tuple(args.header_backup),
        password=_read_password(args.password_file, from_stdin=args.password_stdin),
        persist_root=args.persist_root,
        force=args.force,
    )
    result = write_configuration(request, plugins)
    if args.json:
        print_json(result.to_json())
        return 0
    from advisor.nixos.report import render_config_result

    render_config_result(stdout_console(), result)
    return 0


def _read_password(path: Path | None, *, from_stdin: bool = False) -> str:
    """The user's password from stdin or a file (first line), or asked at a terminal."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise UsageError("--password-stdin: no password on stdin")
        return line
    from advisor.secrets import read_secret

    return read_secret(path, "user password", option="--password-file", interactive=_interactive())


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected PROPERTY=VALUE, got {text!r}")
    return key, value


def _layout_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options 'advisor config', 'install' and 'plan' share, with the same meaning:
    the backend and the layout's settings (declared once, in :mod:`advisor.settings`)."""
    from advisor import settings

    parser.add_argument("--backend", help="backend name (default: the assessment's)")
    settings.add_arguments(parser, command)


def _pool_arguments(parser: argparse.ArgumentParser, disk_metavar: str, disk_help: str) -> None:
    """The options that shape the pool, shared by 'install', 'plan' and 'export disko'
    with the same meaning: the disks (named as ``disk_metavar`` and ``disk_help`` say),
    topology, swap, the pool's properties and the assessment the defaults come from."""
    from advisor.models import TOPOLOGIES

    parser.add_argument("--disk", metavar=disk_metavar, action="append", default=[], help=disk_help)
    parser.add_argument(
        "--topology",
        choices=tuple(TOPOLOGIES),
        help="how the pool spans several disks (default: mirror for two; three or more need it)",
    )
    parser.add_argument(
        "--swap",
        metavar="SIZE",
        help="a swap partition of SIZE (such as 16G) on each disk, encrypted with a new "
        "random key at every boot (default: no swap)",
    )
    parser.add_argument(
        "--pool-option",
        metavar="PROP=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="add or replace a zpool create -o property (repeatable)",
    )
    parser.add_argument(
        "--fs-option",
        metavar="PROP=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="add or replace a zpool create -O property (repeatable)",
    )
    parser.add_argument(
        "--from-assessment",
        metavar="FILE",
        type=Path,
        help="an 'advisor assess --save' file: the backend and the TRIM default",
    )


def _install_arguments(parser: argparse.ArgumentParser, *, plan: bool = False) -> None:
    """The options of 'advisor install' and, with ``plan``, of 'advisor plan': the same
    options, so a plan is made from exactly what an install gets; the help of those a plan
    does not use says so."""

    def install_only(text: str, for_plan: str = "'plan' ignores it") -> str:
        return f"{text}; {for_plan}" if plan else text

    _pool_arguments(
        parser,
        "DISK-ID",
        "a disk to erase: its id (see 'advisor disks'); once per disk of the pool",
    )
    parser.add_argument(
        "--allow-mixed-sizes",
        action="store_true",
        help="use disks that differ in size by more than 3%% (the pool uses only as much "
        "of each as the smallest has)",
    )
    parser.add_argument(
        "--yes-wipe",
        metavar="DISK-ID",
        action="append",
        default=[],
        help=install_only("confirm without a prompt; once per disk, each its id exactly"),
    )
    _layout_arguments(parser, "plan" if plan else "install")
    parser.add_argument(
        "--header-backup",
        metavar="FILE",
        action="append",
        default=[],
        help="with --header: a new file on another medium for the header's backup; once "
        "per disk, in their order",
    )
    parser.add_argument(
        "--root", default="/mnt", help="where to mount the new system (default: /mnt)"
    )
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        type=Path,
        help=install_only("the disk passphrase: FILE's first line (default: asked twice)"),
    )
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        type=Path,
        help=install_only("the user's password: FILE's first line (default: asked twice)"),
    )
    parser.add_argument(
        "--recovery-key-file",
        metavar="FILE",
        type=Path,
        help=install_only(
            "with an --unlock method that makes a recovery key: write it to this new file "
            "(0600) instead of showing it; on --resume, where to read it again"
        ),
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help=(
            "with --resume: the install whose plan to print"
            if plan
            else "journal and log (default: /var/lib/advisor/install-<disk id>)"
        ),
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="what 'plan' always does" if plan else "print the plan, touch nothing",
    )
    parser.add_argument(
        "--save",
        metavar="FILE",
        type=Path,
        help="with plan/--dry-run: also save the plan, to run exactly it with --plan FILE",
    )
    parser.add_argument(
        "--plan",
        metavar="FILE",
        type=Path,
        help=(
            "print the plan 'advisor plan --save FILE' saved, as 'install --plan FILE' runs it"
            if plan
            else "run the plan 'advisor plan --save FILE' saved (same GUIDs and host id)"
        ),
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help=(
            "print the plan of the install in --state-dir, as --resume runs it"
            if plan
            else "continue the interrupted install in --state-dir"
        ),
    )
    parser.add_argument(
        "--stop-after",
        metavar="STEP",
        help=install_only(
            "stop after the step with this id (the ids are in the plan)",
            "'plan' only checks that the plan has this step",
        ),
    )
    parser.add_argument(
        "--allow-bios",
        action="store_true",
        help=install_only(
            "install although this machine booted BIOS", "'plan' needs no EFI and ignores it"
        ),
    )
    parser.add_argument(
        "--insecure-fast-kdf",
        action="store_true",
        help="cheap key derivation, for tests only: never for a real disk",
    )


def _export_arguments(parser: argparse.ArgumentParser, command: str | None) -> None:
    """The options of 'advisor export disko': the layout's as 'plan' takes them (the
    backend, the settings, the disks, topology, swap and pool properties), or a saved
    plan, and where to write."""

    parser.add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="where to write the files"
    )
    _pool_arguments(
        parser,
        "PATH",
        "a disk of the target machine as /dev/disk/by-id/...; once per disk of the pool",
    )
    parser.add_argument(
        "--plan",
        metavar="FILE",
        type=Path,
        help="export the plan 'advisor plan --save FILE' saved (its disks, GUIDs, host id "
        "and settings) instead of the options above",
    )
    if command in (None, "export"):
        _layout_arguments(parser, "export")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        type=Path,
        help="the user's password: FILE's first line (default: asked twice); only its "
        "yescrypt hash is written",
    )
    parser.add_argument(
        "--insecure-fast-kdf",
        action="store_true",
        help="cheap key derivation, for tests only: never for a real disk",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


#: The export's options that a saved plan (--plan) fixes, besides the settings.
_EXPORT_SPEC_OPTIONS = (
    "backend", "disk", "from_assessment", "pool_option", "fs_option", "insecure_fast_kdf",
    "topology", "swap",
)  # fmt: skip


def cmd_export_disko(args: argparse.Namespace) -> int:
    from advisor import settings
    from advisor.console import print_json, stdout_console
    from advisor.deploy import export
    from advisor.install.session import InstallRequest

    plugins = _load_plugins()
    if args.plan is not None:
        given = [
            "--" + name.replace("_", "-")
            for name in _EXPORT_SPEC_OPTIONS
            if getattr(args, name, None) not in (None, False, [])
        ] + settings.given(args)
        if given:
            raise UsageError(
                f"{', '.join(given)}: --plan {str(args.plan)!r} fixes these already; leave them out"
            )
        spec = export.saved_spec(args.plan, plugins)
    else:
        defaults: dict[str, Any] = {}
        if args.from_assessment is not None:
            from advisor.assessmentfile import read_assessment
            from advisor.nixos.write import assessment_defaults, unlock_default

            defaults = assessment_defaults(read_assessment(args.from_assessment))
            defaults["unlock"] = unlock_default(defaults, _chosen_backend(args, defaults))
        backend = _chosen_backend(args, defaults)
        request = InstallRequest(
            backend=backend,
            settings=settings.from_arguments(
                args,
                trim=defaults.get("trim"),
                ssd=defaults.get("ssd"),
                backup_trust=defaults.get("backup_trust"),
                unlock=defaults.get("unlock"),
            ),
            pool_options=dict(args.pool_option),
            dataset_options=dict(args.fs_option),
            fast_kdf=args.insecure_fast_kdf,
            topology=args.topology,
            swap_size=args.swap,
        )
        spec = export.export_spec(request, args.disk, plugins)
    # Everything the export can refuse, before the password is asked for.
    export.host_files(spec, plugins, hashed_password="")
    password = _read_password(args.password_file)
    result = export.write_export(spec, plugins, password, args.out, force=args.force)
    if args.json:
        print_json(result.to_json())
        return 0
    from advisor.deploy.report import render_export_result

    render_export_result(stdout_console(), result)
    return 0


#: The install's own options that decide its spec, besides the settings: a saved plan
#: (--plan) or a resume fixes them all.
_SPEC_OPTIONS = (
    "backend", "disk", "from_assessment", "header_backup", "root", "pool_option", "fs_option",
    "insecure_fast_kdf", "topology", "allow_mixed_sizes", "swap",
)  # fmt: skip


def _check_install_options(args: argparse.Namespace) -> None:
    """Refuse combinations that would be silently ignored."""
    if args.resume and args.state_dir is None:
        raise UsageError("--resume needs the --state-dir of the install to continue")
    if args.save is not None and not args.dry_run:
        raise UsageError("--save is for 'advisor plan' (or --dry-run): it saves the plan shown")
    if not (args.resume or args.plan is not None):
        return
    if args.resume and args.plan is not None:
        raise UsageError("--resume continues the install in --state-dir; it takes no --plan")
    from advisor import settings

    defaults = argparse.ArgumentParser()
    _install_arguments(defaults)
    unset = defaults.parse_args([])
    given = [
        "--" + name.replace("_", "-")
        for name in _SPEC_OPTIONS
        if getattr(args, name) != getattr(unset, name)
    ] + settings.given(args)
    if given:
        source = "--resume" if args.resume else f"--plan {str(args.plan)!r}"
        options = ", ".join(given)
        raise UsageError(f"{options}: {source} fixes these already; leave them out")


def cmd_disks(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console
    from advisor.install import disks

    found = disks.discover_disks()
    firmware = disks.firmware()
    if args.json:
        print_json(disks.disks_to_json(found, firmware))
        return 0
    from advisor.install.report import render_disks

    render_disks(stdout_console(), found, firmware)
    return 0


def _runs_as(args: argparse.Namespace, state_dir: Path) -> str | None:
    """The ``advisor install`` options that run exactly the plan being shown, if any."""
    if args.save is not None or args.plan is not None:
        return f"--plan {shlex.quote(str(args.save or args.plan))}"
    if args.resume:
        return f"--resume --state-dir {shlex.quote(str(state_dir))}"
    return None


def cmd_install(args: argparse.Namespace) -> int:
    from advisor.console import line_printer
    from advisor.install import session as install
    from advisor.install.executor import StepFailed
    from advisor.install.plan import render_script
    from advisor.install.progress import StepPrinter, install_result, step_failure
    from advisor.install.recovery import (
        check_recovery_options,
        recovery_key,
        recovery_key_needed,
        show_recovery_key,
    )

    dry_run = args.dry_run
    _check_install_options(args)
    if args.save is not None:
        _check_writable(args.save)
    if not dry_run:
        install.check_privileges(args.allow_bios)
    plugins = _load_plugins()
    messages = line_printer(stderr=True)
    disks: list[Disk] | None
    if args.resume:
        plan = install.resume_spec(args.state_dir, plugins)
        # None once the install has destroyed something; until then, a fresh install.
        disks = install.resume_target(args.state_dir, plan, plugins)
    elif args.plan is not None:
        plan, disks = install.saved_plan(args.plan, plugins)
    else:
        defaults = {}
        if args.from_assessment is not None:
            from advisor.assessmentfile import read_assessment
            from advisor.nixos.write import assessment_defaults, unlock_default

            defaults = assessment_defaults(read_assessment(args.from_assessment))
            defaults["unlock"] = unlock_default(defaults, _chosen_backend(args, defaults))
        backend = _chosen_backend(args, defaults)
        if not args.disk:
            raise UsageError("give --disk DISK-ID (see 'advisor disks')")
        disks = install.find_targets(args.disk)
        topology = install.choose_topology(len(disks), args.topology)
        mismatch = install.size_mismatch(disks, topology)
        if mismatch is not None:
            if not args.allow_mixed_sizes:
                raise UsageError(f"{mismatch}: give disks of one size, or --allow-mixed-sizes")
            messages(f"warning: {mismatch}", "yellow")
        from advisor import settings

        request = install.InstallRequest(
            backend=backend,
            settings=settings.from_arguments(
                args,
                trim=defaults.get("trim"),
                backup_trust=defaults.get("backup_trust"),
                unlock=defaults.get("unlock"),
                # The kernel says whether the disks spin.
                ssd=all(disk.rotational is False for disk in disks),
            ),
            header_backup=tuple(args.header_backup),
            root=args.root,
            pool_options=dict(args.pool_option),
            dataset_options=dict(args.fs_option),
            fast_kdf=args.insecure_fast_kdf,
            topology=topology,
            swap_size=args.swap,
        )
        plan = install.make_plan(install.new_spec(request, plugins, disks), plugins)
    install.check_stop_after(plan, args.stop_after)
    state_dir = args.state_dir or Path(f"/var/lib/advisor/install-{plan.spec.first.disk_id}")
    for disk in disks or ():
        for warning in disk.warnings:
            messages(f"warning: {disk.disk_id}: {warning}", "yellow")
    if args.save is not None:
        from advisor.install.executor import write_plan_file

        try:
            write_plan_file(args.save, plan)
        except OSError as error:  # the temporary file's name would only confuse
            raise UsageError(f"--save {str(args.save)!r}: {error.strerror}") from None
    if dry_run:
        sys.stdout.write(render_script(plan, runs_as=_runs_as(args, state_dir)))
        return 0

    interactive = install.interactive()
    # Before the state directory or the confirmation: a plan that would stop at a step
    # needing the person must not begin without one.
    install.check_terminal(plan, interactive)
    recovery = recovery_key_needed(plan.steps, state_dir if args.resume else None)
    if args.recovery_key_file is not None and recovery is None and not args.resume:
        raise UsageError(
            "--recovery-key-file: this install makes no recovery key (or has added it "
            "everywhere); it is for an --unlock method such as tpm2"
        )
    check_recovery_options(args.recovery_key_file, recovery, interactive, "install")
    install.prepare_state_dir(state_dir, resume=args.resume)
    if disks is not None:
        install.confirm(
            disks, args.yes_wipe, input if interactive else None, headers=plan.spec.settings.header
        )
    from advisor.secrets import MIN_PASSPHRASE, read_secret

    secrets = {
        "passphrase": read_secret(
            args.passphrase_file,
            "disk passphrase",
            option="--passphrase-file",
            interactive=interactive,
            minimum=MIN_PASSPHRASE,
        ),
        "password": read_secret(
            args.password_file, "user password", option="--password-file", interactive=interactive
        ),
    }
    key = recovery_key(args.recovery_key_file, recovery, interactive, "install")
    if key is not None:
        secrets["recovery-key"] = key
        secrets["passphrase-and-recovery-key"] = f"{secrets['passphrase']}\n{key}"
        if recovery == "new":
            show_recovery_key(key, args.recovery_key_file, interactive)
    try:
        outcome = install.run(
            plan,
            state_dir,
            secrets,
            StepPrinter(messages),
            resume=args.resume,
            stop_after=args.stop_after,
        )
    except StepFailed as failure:
        step_failure(messages, failure, state_dir, plan, _resume_options(args, plan, state_dir))
        return 130 if failure.interrupted else 1
    resume_options = _resume_options(args, plan, state_dir)
    install_result(line_printer(stderr=False), plan, outcome, state_dir, resume_options)
    return 130 if outcome.interrupted else 0


def _resume_options(args: argparse.Namespace, plan: Plan, state_dir: Path) -> list[str]:
    """The options of this run that a resume of it needs again: --allow-bios, the secrets
    files (absolute: a resume may start elsewhere), and --yes-wipe while nothing is
    destroyed yet (until then a resume confirms the disk again)."""
    from advisor.install.session import destruction_started

    options = ["--allow-bios"] if args.allow_bios else []
    for option, path in (
        ("--passphrase-file", args.passphrase_file),
        ("--password-file", args.password_file),
        ("--recovery-key-file", args.recovery_key_file),
    ):
        if path is not None:
            options += [option, str(path.absolute())]
    if not destruction_started(state_dir, plan):
        options += [word for disk_id in args.yes_wipe for word in ("--yes-wipe", disk_id)]
    return options


def cmd_finish(args: argparse.Namespace) -> int:
    import shutil

    from advisor import validate
    from advisor.console import line_printer, print_json
    from advisor.install import finish as finishing
    from advisor.install import session as install
    from advisor.install.executor import Executor, StepFailed, journal_events
    from advisor.install.plan import comment_line, script_steps
    from advisor.install.progress import StepPrinter, finish_failure, finish_result
    from advisor.layoutrecord import load_record

    root = validate.root_path(args.root)
    layout, record = load_record(Path(root), args.record)
    state_dir = args.state_dir or Path(f"/var/lib/advisor/finish-{layout.settings.pool}")
    nixos_install = not args.no_nixos_install and shutil.which("nixos-install") is not None
    procedure = finishing.build_finish(
        layout, root, str(state_dir / "config"), nixos_install=nixos_install
    )
    install.check_stop_after(procedure, args.stop_after)
    if args.dry_run:
        lines = [
            "#!/bin/sh",
            comment_line(f"advisor finish {procedure.fingerprint}: {layout.settings.hostname}"),
            comment_line(f"layout record {record}, root {root}, pool {layout.settings.pool}"),
            "set -eu",
            "",
            *script_steps(procedure.steps),
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    if os.geteuid() != 0:
        raise UsageError("advisor finish installs, unmounts and exports: run it as root")
    events = journal_events(state_dir)
    if events and not args.resume:
        raise UsageError(
            f"{state_dir} holds an earlier finish: continue it with --resume, or remove the "
            "directory to start over"
        )
    if args.resume and not events:
        raise UsageError(f"nothing to resume: {state_dir} holds no finish")
    done = {e.get("step") for e in events if e.get("event") in ("done", "probed")}
    finishing.check_target(layout, root, unmounted="unmount" in done)
    # A link to /nix/store/...: under the root, not on this system, so not followed.
    installed = (Path(root) / "nix/var/nix/profiles/system").is_symlink()
    if not nixos_install and not args.no_nixos_install and not installed and "unmount" not in done:
        # Without the command, the system must have been installed by hand already.
        raise UsageError(
            "nixos-install is not on PATH and the system is not installed: run this "
            "from the NixOS installer, or run nixos-install yourself first"
        )
    install.prepare_state_dir(state_dir, resume=args.resume)
    messages = line_printer(stderr=True)
    executor = Executor(
        procedure,
        state_dir,
        {},
        StepPrinter(messages),
        check_target=lambda: None,  # no step destroys data
        stop_after=args.stop_after,
    )
    try:
        outcome = executor.run()
    except StepFailed as failure:
        finish_failure(messages, failure, state_dir, root)
        return 130 if failure.interrupted else 1
    if args.json:
        print_json(finishing.outcome_json(procedure, outcome, state_dir))
    else:
        console = None
        if sys.stdout.isatty():
            from advisor.console import stdout_console

            console = stdout_console()
        finish_result(line_printer(stderr=False), procedure, outcome, state_dir, console)
    return 130 if outcome.interrupted else 0


def cmd_diff(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console
    from advisor.diff.classify import ERASED
    from advisor.diff.command import run_diff
    from advisor.diff.report import nix_fragment, render, to_json

    result = run_diff(args.root, args.record, args.persisted, args.layout)
    if args.nix:
        sys.stdout.write(nix_fragment(result.tally.result(ERASED)))
    elif args.json:
        print_json(to_json(result, show_noise=args.all))
    else:
        render(stdout_console(), result, show_noise=args.all)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from advisor import backups
    from advisor.backup.run import back_up, read_trust
    from advisor.console import print_json, stdout_console
    from advisor.layoutrecord import load_record

    if args.target is not None:
        backups.parse_target(args.target, "--target")  # bad input first, before any file
    layout, _ = load_record(args.root, args.record)
    # What the configuration was written with (advisor config --backup-target), unless
    # the command line or an assessment says otherwise.
    configured = layout.settings
    if args.target is None and configured.backup_target is None:
        raise UsageError(
            "give --target user@host:pool/path (or pool/path): the layout record names no "
            "backup target (advisor config --backup-target)"
        )
    target = backups.parse_target(args.target or configured.backup_target or "", "--target")
    trust = args.trust
    if trust is None and args.from_assessment is not None:
        trust = read_trust(args.from_assessment)
    if trust is None and args.target in (None, configured.backup_target):
        trust = configured.backup_trust
    trusted = backups.trust(trust, "--trusted/--untrusted")
    pool = layout.settings.pool
    if args.nix:
        backend = _load_plugins().backend(layout.backend)
        fragments = backups.nix_fragments(
            pool, target, trusted=trusted, native=bool(backend.native_encryption)
        )
        text = backups.fragment_text(fragments)
        if args.json:
            print_json({"pool": pool, "target": target.spec(), "trusted": trusted, "nix": text})
        else:
            sys.stdout.write(text)
        return 0
    result = back_up(pool, target, trusted=trusted, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return 0
    from advisor.backup.report import render_backup

    render_backup(stdout_console(), result)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from advisor.check import report
    from advisor.check.command import check, failed
    from advisor.console import print_json

    facts, results = check(
        args.root,
        args.record,
        before_reboot=args.before_reboot,
        assessment=args.from_assessment,
    )
    if args.json:
        print_json(report.to_json(facts, results))
    elif sys.stdout.isatty() and not args.summary:
        from advisor.console import stdout_console

        report.render(stdout_console(), facts, results)
    else:
        sys.stdout.write("\n".join(report.plain_lines(results, summary=args.summary)) + "\n")
    bad = failed(results)
    if bad and not args.json:
        # On stderr too: a step that runs the check (advisor install) shows its error tail.
        for result in bad:
            sys.stderr.write(f"advisor: check {result.id} failed: {result.detail}\n")
    return 1 if bad else 0


def cmd_rekey(args: argparse.Namespace) -> int:
    from advisor.install.rekey import RekeyRequest, rekey_command

    request = RekeyRequest(
        root=args.root,
        record=args.record,
        passphrase_file=args.passphrase_file,
        new_passphrase_file=args.new_passphrase_file,
        recovery_key=args.recovery_key,
        recovery_key_file=args.recovery_key_file,
        state_dir=args.state_dir,
        resume=args.resume,
        dry_run=args.dry_run,
        stop_after=args.stop_after,
        fast_kdf=args.insecure_fast_kdf,
        json=args.json,
    )
    return rekey_command(request, _load_plugins())


def cmd_plugins(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console

    plugins = _load_plugins(report_failures=False)
    if args.check:
        from advisor.plugincheck import check_plugins

        check_plugins(plugins)
    if args.json:
        print_json([record.to_json() for record in plugins.records])
    else:
        from advisor.report import render_plugins

        render_plugins(stdout_console(), plugins.records)
    return 1 if args.check and plugins.failures else 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from advisor.console import print_json
    from advisor.deploy.fleet import write_fleet

    if args.inventory is None or args.out is None:
        raise UsageError(
            "give --inventory FILE and --out DIR (or 'advisor fleet deploy' to install)"
        )
    result = write_fleet(args.inventory, args.out, _load_plugins(), force=args.force)
    if args.json:
        print_json(result.to_json())
    else:
        sys.stdout.write("\n".join(result.lines()) + "\n")
    return 0


def cmd_fleet_deploy(args: argparse.Namespace) -> int:
    from advisor.console import line_printer, print_json, warn
    from advisor.deploy import run
    from advisor.deploy.inventory import read_inventory
    from advisor.deploy.progress import progress_printer, rerun_command, summary_lines

    jobs = run.check_jobs(args.jobs if args.jobs is not None else run.DEFAULT_JOBS)
    nixos_anywhere = run.program(args.nixos_anywhere, os.environ, dry_run=args.dry_run)
    request = run.DeployRequest(
        inventory=read_inventory(args.inventory, _load_plugins()),
        flake=args.flake,
        hosts=tuple(args.host),
        jobs=jobs,
        log_dir=args.log_dir,
    )
    if args.dry_run:
        sys.stdout.write("\n".join(run.dry_run_lines(request, nixos_anywhere)) + "\n")
        return 0
    if not (args.flake / "flake.lock").exists():
        warn(
            f"{args.flake / 'flake.lock'} does not exist: each host resolves the flake's "
            "inputs itself and may get another nixpkgs; run 'nix flake lock' there first"
        )
    results = run.deploy_fleet(request, nixos_anywhere, progress_printer(line_printer(stderr=True)))
    if args.json:
        print_json([result.to_json() for result in results])
    else:
        options = ["--nixos-anywhere", args.nixos_anywhere] if args.nixos_anywhere else []
        rerun = rerun_command(args.inventory, args.flake, options)
        sys.stdout.write("\n".join(summary_lines(results, rerun)) + "\n")
    return 0 if all(result.ok for result in results) else 1


def _check_writable(path: Path) -> None:
    """Fail before any question is asked if ``--save`` could not be written."""
    if path.is_dir():
        raise UsageError(f"--save {str(path)!r} is a directory")
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise UsageError(f"--save {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--save {str(path)!r}: directory {str(parent)!r} is not writable")
