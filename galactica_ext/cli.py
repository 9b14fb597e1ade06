"""``galactica-ext``: the command line (info, agent, make-checkpoint)."""

from __future__ import annotations

import argparse
import json
import sys

from .notices import MAKES_THINGS_UP, MODEL_CARD, MODEL_LICENCE


def _info(args: argparse.Namespace) -> int:
    from . import __version__
    from .specs import resolve_model_spec

    facts: dict[str, object] = {"galactica-ext": __version__}
    try:
        facts["model"] = resolve_model_spec(args.model)
    except (ValueError, FileNotFoundError) as err:
        facts["model"] = f"error: {err}"
    try:
        import torch
        import transformers

        from .engine.loading import pick_device, pick_dtype

        device = pick_device(args.device)
        facts.update(
            torch=torch.__version__,
            transformers=transformers.__version__,
            device=str(device),
            dtype=str(pick_dtype("auto", device)).removeprefix("torch."),
            cuda_devices=torch.cuda.device_count(),
        )
    except ImportError as err:
        facts["torch"] = f"not importable: {err}"
    from .agent.runtime import read_runtime, runtime_file

    running = read_runtime()
    facts["agent"] = f"{running.url} (pid {running.pid})" if running else f"none ({runtime_file()})"
    facts["model licence"] = "CC BY-NC 4.0 (non-commercial use only)"
    facts["model card"] = MODEL_CARD
    if args.json:
        print(json.dumps({**facts, "notice": f"{MODEL_LICENCE} {MAKES_THINGS_UP}"}, indent=2))
    else:
        width = max(map(len, facts))
        for key, value in facts.items():
            print(f"{key:<{width}}  {value}")
        print(f"\n{MODEL_LICENCE}\n{MAKES_THINGS_UP}")
    return 0


def _agent(args: argparse.Namespace) -> int:
    from .agent.serve import run

    run(args)
    return 0


def _make_checkpoint(args: argparse.Namespace) -> int:
    from .checkpoints import build_random_checkpoint

    print(build_random_checkpoint(args.out, args.shape, args.seed))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .agent.serve import add_arguments

    parser = argparse.ArgumentParser(prog="galactica-ext", description="GALACTICA for JupyterLab.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser(
        "info", help="version, resolved model, torch and device, and the model's licence"
    )
    info.add_argument("--model", help="model spec to resolve (default: $GALACTICA_MODEL or 125m)")
    info.add_argument("--device", default="auto")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
    agent = commands.add_parser("agent", help="serve a model over an OpenAI-compatible API")
    add_arguments(agent)
    agent.set_defaults(func=_agent)
    ckpt = commands.add_parser(
        "make-checkpoint",
        help="a random-weight GALACTICA-shaped model with the real tokenizer "
        "($GALACTICA_TOKENIZER_DIR), for trying things out without the hub",
    )
    ckpt.add_argument("out", help="directory to write")
    ckpt.add_argument("--shape", default="tiny", choices=["tiny", "125m", "1.3b"])
    ckpt.add_argument("--seed", type=int, default=0)
    ckpt.set_defaults(func=_make_checkpoint)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .openmp import share_one_runtime

    share_one_runtime()  # before the parser imports the agent, and with it torch
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
