"""`python -m vssm.nnunet {path,register,unregister}`: make vssm's U-Mamba trainers visible to nnU-Net.

nnU-Net >= 2.8: `export nnUNet_extTrainer=$(python -m vssm.nnunet path)` (nothing is written). nnU-Net 2.7 (what pip
resolves next to vssm's timm pin) has no nnUNet_extTrainer: `register` writes a one-line module into nnU-Net's own
trainer package, inside its installation in site-packages; `unregister` removes it.
"""

from __future__ import annotations

import argparse
import sys

from .registration import EXT_TRAINER_DIR, nnunet_reads_ext_trainer, nnunet_version, register, unregister

_EXPORT = "export nnUNet_extTrainer=$(python -m vssm.nnunet path)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vssm.nnunet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    what = "print the folder to put in nnUNet_extTrainer (nnU-Net >= 2.8); writes nothing"
    commands.add_parser("path", help=what, description=what)
    for name, what in (("register", "write a one-line module importing vssm's trainers into"),
                       ("unregister", "remove the module `register` wrote from")):
        what = f"{what} nnU-Net's trainer package, inside nnU-Net's installation in site-packages (for nnU-Net 2.7)"
        command = commands.add_parser(name, help=what, description=what)
        command.add_argument("--trainer-dir", help="another trainer folder than nnU-Net's own")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ImportError, FileNotFoundError) as error:
        parser.exit(2, f"{parser.prog} {args.command}: {error}\n")
    return 0


def run(args: argparse.Namespace) -> None:
    if args.command == "path":
        print(EXT_TRAINER_DIR, flush=True)
        if not nnunet_reads_ext_trainer():
            print(f"note: nnU-Net {nnunet_version()} does not read nnUNet_extTrainer (2.8 does): "
                  "`python -m vssm.nnunet register` makes the trainers visible to it", file=sys.stderr)
    elif args.command == "register":
        written = register(args.trainer_dir)
        where = "" if args.trainer_dir else " (nnU-Net's own package, inside its installation in site-packages)"
        print(f"wrote {written}{where}; `python -m vssm.nnunet unregister` removes it")
        if args.trainer_dir is None and nnunet_reads_ext_trainer():
            print(f"nnU-Net {nnunet_version()} also reads nnUNet_extTrainer, which needs no writing: `{_EXPORT}`")
    else:
        removed = unregister(args.trainer_dir)
        print(f"removed {removed}" if removed else "nothing to remove")


if __name__ == "__main__":
    raise SystemExit(main())
