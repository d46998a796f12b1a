# Evaluates a generated flake.nix's outputs with stand-in inputs.
{ file }:
let
  flake = import file;
  nixpkgs = { lib.nixosSystem = args: { _nixosSystem = args; }; };
  impermanence = { nixosModules.impermanence = "impermanence-module"; };
  sops-nix = { nixosModules.sops = "sops-module"; };
  disko = { nixosModules.disko = "disko-module"; };
  outputs = flake.outputs { self = { }; inherit nixpkgs impermanence sops-nix disko; };
  show = module: if builtins.isPath module then toString module else module;
in {
  inherit (flake) description inputs;
  nixosConfigurations = builtins.mapAttrs
    (name: system: { modules = map show system._nixosSystem.modules; })
    outputs.nixosConfigurations;
}
