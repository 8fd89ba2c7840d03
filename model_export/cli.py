"""``model-export``: train, convert, bundle, sign, inspect and verify forecaster models.

Exit status: 0 success; 1 ``verify`` found the bundle bad (or a written bundle failed
to load back); 2 bad input or options (the message says what to fix, no traceback).
See docs/model-export.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeAlias

from edge_agent.errors import BackendUnavailable
from edgetwin_common import extras
from edgetwin_contracts.errors import BundleRejected, KeyInvalid
from model_export.convert import DEFAULT_MAX_INT8_INCREASE, DEFAULT_REPRESENTATIVE_WINDOWS
from model_export.dataset import WindowSpec
from model_export.errors import ExportError
from model_export.train import TrainSettings

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        return extras.report(exc, "model-export", "export")


_NEEDS_TENSORFLOW = frozenset({"build", "convert", "default-model", "demo"})


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in _NEEDS_TENSORFLOW:
        # Said before any work: on a device install these would fail half-way through.
        needs = extras.require("export", f"model-export {args.command}")
        if needs is not None:
            return needs
    try:
        status: int = args.run(args)
    except BundleRejected as exc:
        print(f"model-export: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (ExportError, KeyInvalid, BackendUnavailable) as exc:
        print(f"model-export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("model-export: interrupted", file=sys.stderr)
        return 130
    return status


def _say(message: str) -> None:
    print(f"model-export: {message}", flush=True)


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not values or values[0] < 1 or any(b <= a for a, b in pairwise(values)):
        raise argparse.ArgumentTypeError(f"{text!r}: horizons must be ascending integers >= 1")
    return values


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-export",
        description="Train edgetwin forecasters, convert them to int8 TFLite, "
        "and write, inspect and verify signed model bundles.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(sub)
    _add_convert(sub)
    _add_bundle_commands(sub)
    _add_default_model(sub)
    p = sub.add_parser("demo", help="a one-minute end-to-end tour on a synthetic CSV")
    p.add_argument(
        "--workdir", type=Path, required=True, help="folder for the data, model and bundle"
    )
    p.set_defaults(run=_cmd_demo)
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_build(sub: Subparsers) -> None:
    p = sub.add_parser("build", help="train a forecaster (.keras) from a dataset CSV")
    p.add_argument("--data", type=Path, required=True, help="CSV: timestamp,<channel>...")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.keras)")
    p.add_argument("--window", type=_positive, default=32, help="input readings (32)")
    p.add_argument(
        "--horizons", type=_horizons, default=(1, 2, 4, 8, 16), help="samples ahead (1,2,4,8,16)"
    )
    p.add_argument("--stride", type=_positive, default=1, help="samples between windows (1)")
    p.add_argument(
        "--holdout", type=_fraction, default=0.2, help="held-out end of each series (0.2)"
    )
    p.add_argument("--epochs", type=_positive, default=40, help="the most epochs to train (40)")
    p.add_argument("--batch-size", type=_positive, default=256, help="windows per step (256)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (0.001)")
    p.add_argument("--patience", type=_positive, default=4, help="early-stopping patience")
    p.add_argument(
        "--loss", choices=("huber", "mse"), default="huber", help="training loss (huber)"
    )
    p.add_argument("--seed", type=int, default=7, help="weights and shuffling (7)")
    p.set_defaults(run=_cmd_build)


def _add_convert(sub: Subparsers) -> None:
    p = sub.add_parser("convert", help="int8-convert a .keras model and write a signed bundle")
    p.add_argument("--model", type=Path, required=True, help=".keras file from 'build'")
    p.add_argument(
        "--data", type=Path, required=True, help="dataset CSV (representative + held-out data)"
    )
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    p.add_argument("--name", default=None, help="model name (default: the model file's stem)")
    p.add_argument("--version", default="0.1.0", help="release version (0.1.0)")
    p.add_argument("--description", default="", help="free text for the manifest")
    p.add_argument(
        "--max-int8-increase",
        type=float,
        default=DEFAULT_MAX_INT8_INCREASE,
        help="refuse when int8 MAE exceeds float32 MAE by more than this fraction (0.03)",
    )
    p.add_argument(
        "--representative",
        type=_positive,
        default=DEFAULT_REPRESENTATIVE_WINDOWS,
        help=f"calibration windows ({DEFAULT_REPRESENTATIVE_WINDOWS})",
    )
    p.add_argument("--seed", type=int, default=7, help="representative-window sampling (7)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.set_defaults(run=_cmd_convert)


def _add_bundle_commands(sub: Subparsers) -> None:
    p = sub.add_parser("inspect", help="print a bundle's manifest and tensor details")
    p.add_argument("bundle", type=Path)
    p.add_argument("--json", action="store_true", help="print only the manifest JSON")
    p.set_defaults(run=_cmd_inspect)

    p = sub.add_parser(
        "verify", help="check signature, hash, tensors and golden vectors (exit 0 iff all hold)"
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help="trusted release public key")
    p.add_argument("--backend", default="auto", help="auto, ai-edge-litert or tflite-runtime")
    p.set_defaults(run=_cmd_verify)

    p = sub.add_parser("keygen", help="create an Ed25519 release key pair")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the key pair")
    p.add_argument("--name", default="release", help="file stem: <name>.key, <name>.pub")
    p.set_defaults(run=_cmd_keygen)


def _add_default_model(sub: Subparsers) -> None:
    p = sub.add_parser("default-model", help="rebuild the generic default model bundle")
    p.add_argument("--out", type=Path, required=True, help="bundle folder (replaced)")
    p.add_argument(
        "--key-dir", type=Path, required=True, help="holds release.key (created if absent)"
    )
    p.add_argument(
        "--public-key-out",
        type=Path,
        default=None,
        help="where the public key goes (default: <out>/../default_release.pub)",
    )
    p.add_argument("--seed", type=int, default=None, help="default: the shipped model's")
    p.add_argument("--series", type=_positive, default=None, help="synthetic series (3000)")
    p.add_argument("--epochs", type=_positive, default=None, help="default: the shipped's")
    p.add_argument("--version", default=None, help="default: the shipped model's version")
    p.set_defaults(run=_cmd_default_model)


def _cmd_build(args: argparse.Namespace) -> int:
    from model_export.workflows import build_from_csv

    spec = WindowSpec(
        window_length=args.window,
        horizons=args.horizons,
        stride=args.stride,
        holdout_fraction=args.holdout,
    )
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        loss=args.loss,
        seed=args.seed,
    )
    build_from_csv(args.data, args.out, spec, settings, say=_say)
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    from model_export.workflows import convert_to_bundle

    convert_to_bundle(
        model_path=args.model,
        data_path=args.data,
        dest=args.out,
        key_path=args.key,
        name=args.name,
        version=args.version,
        description=args.description,
        max_int8_increase=args.max_int8_increase,
        representative_count=args.representative,
        seed=args.seed,
        force=args.force,
        say=_say,
    )
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from model_export.inspection import describe_bundle

    print(describe_bundle(args.bundle, as_json=args.json), end="")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from edge_agent.model.bundle import load_bundle
    from edgetwin_contracts.signing import load_public_key

    key = load_public_key(args.public_key)
    loaded = load_bundle(args.bundle, key, backend=args.backend)
    m = loaded.manifest
    print(
        f"OK {args.bundle}: {m.model.name} {m.model.version}, signature by key "
        f"{m.signing.key_id}, sha256 {m.file.sha256[:16]}…, tensors match, "
        f"{len(m.golden.vectors)} golden vectors reproduce on {loaded.backend.value}"
    )
    return EXIT_OK


def _cmd_keygen(args: argparse.Namespace) -> int:
    from edgetwin_contracts.signing import key_id, load_public_key
    from model_export.pipeline import create_keypair

    private_path, public_path = create_keypair(args.out_dir, args.name)
    print(f"private key: {private_path} (mode 0600; keep it secret, never commit it)")
    print(f"public key:  {public_path} (key id {key_id(load_public_key(public_path))})")
    return EXIT_OK


def _cmd_default_model(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from model_export.default_model import DefaultModelSettings, build_default_model

    settings = DefaultModelSettings()
    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.series is not None:
        overrides["series"] = args.series
    if args.version is not None:
        overrides["version"] = args.version
    if args.epochs is not None:
        overrides["train"] = replace(settings.train, epochs=args.epochs)
    settings = replace(settings, **overrides)
    out: Path = args.out
    public_key_out = args.public_key_out or out.resolve().parent / "default_release.pub"
    result = build_default_model(out, args.key_dir, public_key_out, settings, say=_say)
    print(json.dumps(result.bundle.manifest.metrics.model_dump(mode="json"), indent=2))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from model_export.demo import run_demo

    return run_demo(args.workdir, say=_say)


if __name__ == "__main__":
    sys.exit(main())
