"""`python -m vssm.nnunet {path,register,unregister}`: make vssm's U-Mamba trainers visible to nnU-Net."""

from __future__ import annotations

import argparse

from .registration import EXT_TRAINER_DIR, register, unregister


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vssm.nnunet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("path", help="print the folder to put in nnUNet_extTrainer (nnU-Net >= 2.8)")
    for name, what in (("register", "copy the trainer module into"), ("unregister", "remove it from")):
        command = commands.add_parser(name, help=f"{what} nnU-Net's trainer package")
        command.add_argument("--trainer-dir", help="another trainer folder than nnU-Net's own")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(EXT_TRAINER_DIR)
    elif args.command == "register":
        print(f"wrote {register(args.trainer_dir)}")
    else:
        removed = unregister(args.trainer_dir)
        print(f"removed {removed}" if removed else "nothing to remove")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
