# Every program the advisor runs, and the nixpkgs attribute that provides it: the one table
# flake.nix puts on the wrapped `advisor`'s PATH, and tests/test_flake.py checks against the
# programs every built-in backend's plans run (argv, probes, restores). Each attribute was
# read in nixpkgs (path given) to provide the program in its bin directory.
{
  # First on PATH (makeWrapper --prefix): the advisor runs the versions it was built with,
  # whatever the running system has.
  prefix = {
    # sys.executable: the interpreter the package is built with (flake.nix takes its
    # package set from this attribute), which runs `python -m advisor config|check`.
    python = "python3";
    # pkgs/by-name/cr/cryptsetup (outputs bin, out...: lib.makeBinPath takes bin)
    cryptsetup = "cryptsetup";
    # pkgs/by-name/gp/gptfdisk/package.nix: installBin gdisk sgdisk fixparts cgdisk
    sgdisk = "gptfdisk";
    # pkgs/by-name/do/dosfstools/package.nix: --enable-compat-symlinks makes mkfs.vfat
    "mkfs.vfat" = "dosfstools";
    # util-linux: blkid, wipefs, mount, umount, mountpoint
    blkid = "util-linux";
    wipefs = "util-linux";
    mount = "util-linux";
    umount = "util-linux";
    mountpoint = "util-linux";
    # pkgs/os-specific/linux/systemd/default.nix: withCryptsetup, withTpm2Tss and withFido2
    # on by default (systemd-cryptenroll with its TPM2 and FIDO2 libraries)
    udevadm = "systemd";
    systemd-cryptenroll = "systemd";
    # pkgs/tools/security/mkpasswd (Debian whois's mkpasswd, with libxcrypt: yescrypt);
    # advisor config hashes the password with it
    mkpasswd = "mkpasswd";
    cp = "coreutils";
    mkdir = "coreutils";
    mv = "coreutils";
    test = "coreutils";
  };
  # Last on PATH (makeWrapper --suffix): the running system's own come first, the flake's
  # only where it has none (another distribution with Nix). The ZFS tools must match the
  # running kernel's module (the installer's userland does; a newer one may not), and the
  # installer's nix and nixos-install match its own store.
  suffix = {
    # pkgs/os-specific/linux/zfs/generic.nix (pkgs.zfs, the default boot.zfs.package):
    # userland tools, sbin moved to bin
    zfs = "zfs";
    zpool = "zfs";
    zgenhostid = "zfs";
    zdb = "zfs";
    # pkgs/by-name/ni/nixos-install-tools/package.nix: "the commands like
    # nixos-generate-config and nixos-install that you would otherwise only find on a
    # NixOS system"
    nixos-install = "nixos-install-tools";
    nixos-generate-config = "nixos-install-tools";
    # advisor check reads the configuration with nix-instantiate (advisor/nixeval.py)
    nix-instantiate = "nix";
    # pkgs/by-name/ni/nixos-anywhere/package.nix: installs src/nixos-anywhere.sh as
    # bin/nixos-anywhere; advisor fleet deploy runs it (advisor/deploy/run.py)
    nixos-anywhere = "nixos-anywhere";
  };
}
