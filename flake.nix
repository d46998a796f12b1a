# The advisor as a Nix flake. On the NixOS installer (README.md):
#   nix run github:OWNER/REPO -- assess
# nix/programs.nix is the one table of the programs it runs and the nixpkgs attributes
# that provide them; tests/test_flake.py checks the table against every built-in plan and
# evaluates this file against stand-ins for nixpkgs (tests/nix/eval-advisor-flake.nix).
{
  description = "advisor: choose and install an encrypted ZFS layout for NixOS with an ephemeral root";

  # The release the configurations advisor writes follow (Settings.nixos_release in
  # advisor/models.py; tests/test_flake.py keeps the two the same).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      programs = import ./nix/programs.nix;
      # One package per attribute, whatever the number of programs it provides.
      packagesOf = pkgs: table: nixpkgs.lib.unique (map (name: pkgs.${name}) (builtins.attrValues table));
      version = builtins.head (
        builtins.match ".*__version__ = \"([^\"]+)\".*" (builtins.readFile ./advisor/__init__.py)
      );
      # The interpreter sys.executable names in the plans: the table's python.
      pythonOf = pkgs: pkgs.${programs.prefix.python};
      dependenciesOf =
        python: with python.pkgs; [
          pluggy
          questionary
          rich
          pyudev # nixpkgs' own: patched to load libudev from the store (no ld.so cache on NixOS)
          cryptography
        ];
      advisorFor =
        pkgs:
        let
          python = pythonOf pkgs;
          dependencies = dependenciesOf python;
        in
        # nixpkgs doc/languages-frameworks/python.section.md: buildPythonApplication with
        # pyproject = true builds the wheel with the build-system given (pyproject.toml:
        # hatchling), which holds advisor/ and the built-in plugins of plugins/ with their
        # entry points.
        python.pkgs.buildPythonApplication {
          pname = "nixos-crypt-advisor";
          inherit version dependencies;
          pyproject = true;
          src = ./.;
          build-system = [ python.pkgs.hatchling ];
          # makeWrapperArgs go to wrapProgram after the wrapper's own PATH
          # (pkgs/development/interpreters/python/wrap.sh).
          makeWrapperArgs = [
            "--prefix"
            "PATH"
            ":"
            (pkgs.lib.makeBinPath (packagesOf pkgs programs.prefix))
            "--suffix"
            "PATH"
            ":"
            (pkgs.lib.makeBinPath (packagesOf pkgs programs.suffix))
            # Plan steps run `sys.executable -m advisor config|check` and
            # `-m advisor.install.verify|keyfile`: the bare interpreter finds the package
            # and its dependencies only through PYTHONPATH, since wrap.sh patches the
            # script's own sys.path and sets none.
            "--prefix"
            "PYTHONPATH"
            ":"
            "${placeholder "out"}/${python.sitePackages}:${python.pkgs.makePythonPath dependencies}"
          ];
          pythonImportsCheck = [
            "advisor"
            "advisor_luks"
            "advisor_luks_detached"
            "advisor_unlock"
            "advisor_zfs_native"
          ];
          # Runs after the wrapping (buildPythonPackage's checks are its installCheckPhase):
          # every built-in plugin found through its entry point and run through assess,
          # generate and build_plan, with no disk touched.
          checkPhase = ''
            runHook preCheck
            HOME="$TMPDIR" "$out/bin/advisor" plugins --check
            runHook postCheck
          '';
          meta = {
            description = "Choose and install an encrypted ZFS layout for NixOS with an ephemeral root";
            license = nixpkgs.lib.licenses.mit;
            mainProgram = "advisor";
            platforms = nixpkgs.lib.platforms.linux;
          };
        };
    in
    {
      packages = forSystems (pkgs: {
        default = advisorFor pkgs;
      });

      apps = forSystems (pkgs: {
        default = {
          type = "app";
          program = "${advisorFor pkgs}/bin/advisor";
          meta.description = "advisor: assess, plan and install NixOS on encrypted ZFS";
        };
      });

      # The unit tests, lint and type check (README.md, Development): the test tools, the
      # programs the tests run for real, and the tree installed editable into a venv of
      # this interpreter, since the built-in plugins load through entry points.
      devShells = forSystems (
        pkgs:
        let
          python = pythonOf pkgs;
        in
        {
          default = pkgs.mkShell {
            packages = [
              (python.withPackages (
                ps:
                dependenciesOf python
                ++ [
                  ps.hatchling
                  ps.editables
                  ps.pip
                  ps.pytest
                  ps.hypothesis
                  ps.mypy
                ]
              ))
              pkgs.ruff
              pkgs.age # age-keygen: checks generated sops-nix keys
              pkgs.openssh # ssh-keygen: checks generated initrd host keys
            ]
            # Not the table's bare python: the environment above is the interpreter here.
            ++ packagesOf pkgs (builtins.removeAttrs programs.prefix [ "python" ])
            ++ packagesOf pkgs programs.suffix;
            shellHook = ''
              if [ ! -d .venv-nix ]; then
                python -m venv --system-site-packages .venv-nix
                .venv-nix/bin/pip install --quiet --no-build-isolation --no-deps -e . \
                  ./tests/plugins/advisor-tpm2-example ./tests/plugins/advisor-luks-tries-example
              fi
              source .venv-nix/bin/activate
            '';
          };
        }
      );
    };
}
