# Evaluates a generated configuration.nix against minimal stand-ins for the NixOS module
# arguments, so tests can assert on option paths and values as data (JSON).
# nix-instantiate --eval --strict --json --arg file ./configuration.nix eval-config.nix
# (advisor/nixeval.py runs it for advisor check; tests/nixeval.py for the tests)
{ file }:
let
  # lib.mk* wrap a value the way the module system does, in a shape JSON can show.
  order = priority: content: { _order = priority; inherit content; };
  lib = {
    mkAfter = order 1500;
    mkBefore = order 500;
    mkDefault = content: { _override = 1000; inherit content; };
    mkForce = content: { _override = 50; inherit content; };
  };
  # A package interpolated into a script ("${pkgs.rsync}/bin/rsync") stands for the
  # test machine's own /usr, so the script runs there as written.
  host = { outPath = "/usr"; };
  pkgs = { zfs = { _package = "zfs"; }; rsync = host; util-linux = host; };
  module = import file { config = { }; inherit lib pkgs; };
in
  # Paths would be copied to the store by --json: show them as strings instead.
  module // (if module ? imports then { imports = map toString module.imports; } else { })
