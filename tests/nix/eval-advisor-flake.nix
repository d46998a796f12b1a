# Evaluates the project's own flake.nix with stand-ins for nixpkgs (no network, no real
# nixpkgs): each package a small set named after its attribute, whose store path is
# /nix/store/ATTRIBUTE; buildPythonApplication and mkShell hand back their arguments. Enough
# to read the package's wrapper arguments and the app's program (tests/test_flake.py).
{ file }:
let
  flake = import file;
  table = import ((dirOf file) + "/nix/programs.nix");
  fake = name: {
    outPath = "/nix/store/${name}";
    _name = name;
  };
  fakes = names: builtins.listToAttrs (map (name: { inherit name; value = fake name; }) names);
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    unique = builtins.foldl' (seen: x: if builtins.elem x seen then seen else seen ++ [ x ]) [ ];
    # As nixpkgs' lib.makeBinPath: each package's bin output (or itself), then /bin.
    makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p.bin or p}/bin") packages);
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
  sitePackages = "lib/python3.13/site-packages";
  python = fake "python3" // {
    inherit sitePackages;
    pkgs = pythonPackages;
    withPackages = f: fake "python3-env" // { _packages = map (p: p._name) (f pythonPackages); };
  };
  pythonPackages =
    fakes [ "pluggy" "questionary" "rich" "pyudev" "cryptography" "hatchling" "editables"
            "pip" "pytest" "hypothesis" "mypy" ]
    // {
      buildPythonApplication = args: fake "advisor" // { _args = args; };
      makePythonPath = drvs: builtins.concatStringsSep ":" (map (d: "${d}/${sitePackages}") drvs);
    };
  pkgs =
    fakes (builtins.attrValues table.prefix ++ builtins.attrValues table.suffix)
    // fakes [ "ruff" "age" "openssh" ]
    // {
      inherit lib;
      python3 = python;
      mkShell = args: { _mkShell = args; };
    };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: pkgs);
  };
  outputs = flake.outputs { self = { }; inherit nixpkgs; };
  names = map (p: p._name);
in
{
  inherit (flake) description;
  nixpkgs = flake.inputs.nixpkgs.url;
  packages = builtins.mapAttrs (system: set: {
    inherit (set.default._args) pname version pyproject makeWrapperArgs pythonImportsCheck checkPhase;
    inherit (set.default._args.meta) mainProgram;
    dependencies = names set.default._args.dependencies;
    build-system = names set.default._args.build-system;
    src = toString set.default._args.src;
    out = set.default.outPath;
  }) outputs.packages;
  inherit (outputs) apps;
  devShells = builtins.mapAttrs (system: set: {
    packages = map (p: { name = p._name; packages = p._packages or [ ]; }) set.default._mkShell.packages;
    inherit (set.default._mkShell) shellHook;
  }) outputs.devShells;
}
