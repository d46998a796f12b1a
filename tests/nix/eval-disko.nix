# A disko configuration evaluated with disko's own types (tests/vendor/disko, offline):
# the device tree as data (options only: the internal `_...` attributes and functions
# dropped), and the create and mount scripts disko generates from it.
# `file`: a module setting `disko.devices`, either an attribute set or a function of
# `{ lib, ... }` (as a NixOS module is called).
{
  file,
  vendor ? ../vendor,
}:
let
  lib = import (vendor + "/nixpkgs-lib/lib");
  diskoLib = import (vendor + "/disko/lib") {
    inherit lib;
    makeTest = throw "unused";
    eval-config = throw "unused";
    qemu-common = throw "unused";
  };
  imported = import file;
  module = if builtins.isFunction imported then imported { inherit lib; } else imported;
  devices =
    (lib.evalModules {
      modules = [
        { options.disko.devices = lib.mkOption { type = diskoLib.toplevel; }; }
        { disko.devices = module.disko.devices; }
      ];
    }).config.disko.devices;
  options =
    value:
    if builtins.isAttrs value then
      lib.mapAttrs (_: options) (
        lib.filterAttrs (name: v: !(lib.hasPrefix "_" name) && !(builtins.isFunction v)) value
      )
    else if builtins.isList value then
      map options value
    else
      value;
in
{
  tree = options { inherit (devices) disk zpool; };
  create = devices._create;
  mount = devices._mount;
}
