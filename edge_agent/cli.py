"""`edge-agent` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent import __version__
from edge_agent.errors import BackendUnavailable, BundleRejected, KeyInvalid
from edge_agent.models import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the shipped model on a simulated pump with faults")
    demo.add_argument("--samples", type=int, default=3000, help="samples to stream (>= 200)")
    demo.add_argument("--backend", default="auto", help="auto, ai-edge-litert or tflite-runtime")

    model = sub.add_parser("model", help="model bundles on this device")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    verify = model_sub.add_parser(
        "verify", help="verify a bundle (signature, hash, tensors, golden vectors)"
    )
    verify.add_argument("bundle", type=Path, nargs="?", default=DEFAULT_BUNDLE)
    verify.add_argument("--public-key", type=Path, default=DEFAULT_PUBLIC_KEY)
    verify.add_argument("--backend", default="auto")
    return parser


def _verify(bundle: Path, public_key_path: Path, backend: str) -> int:
    from edge_agent.bundle.loader import load_bundle
    from edgetwin_contracts.signing import load_public_key

    model = load_bundle(bundle, load_public_key(public_key_path), backend=backend)
    m = model.manifest
    print(f"OK {bundle}: {m.model.name} {m.model.version} on {model.backend}")
    print(f"  sha256 {m.file.sha256} ({m.file.size_bytes} bytes), key {m.signing.key_id}")
    print(f"  window {m.input.window_length}, horizons {m.output.horizons}")
    print(f"  {len(m.golden.vectors)} golden vectors reproduce within {m.golden.tolerance_lsb} LSB")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from edge_agent import demo

            if args.samples < 200:
                print("edge-agent demo: --samples must be >= 200", file=sys.stderr)
                return EXIT_USAGE
            return demo.main(args.samples, args.backend)
        if args.command == "model" and args.model_command == "verify":
            return _verify(args.bundle, args.public_key, args.backend)
    except BundleRejected as exc:
        print(f"REJECTED {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (KeyInvalid, BackendUnavailable, ValueError) as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
