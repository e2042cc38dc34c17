"""``python -m stagectl.sandbox.images {build,list,alias}``: the test bed's image cache."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from stagectl.sandbox.images.builder import (
    IMAGES,
    NO_STANDIN,
    BuildError,
    BuildResult,
    ImageBuilder,
    find_standin,
    format_table,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stagectl.sandbox.images",
        description="Build the test bed's images (stand-ins for the official images, and the "
        "sandbox server) from Debian, cached by content key.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build what is missing (all images by default)")
    build.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"images to build: {', '.join(s.name for s in IMAGES)}",
    )
    build.add_argument("--force", action="store_true", help="rebuild the named images")
    build.add_argument("--json", action="store_true", help="print the results as JSON")
    lst = sub.add_parser("list", help="show each image's content-keyed reference, built or not")
    lst.add_argument("--json", action="store_true", help="print as JSON")
    sub.add_parser("prune", help="remove images of this builder left from older recipes")
    alias = sub.add_parser(
        "alias",
        help="tag stand-ins locally under official references (e.g. python:3.13-slim), for "
        "Dockerfiles that say FROM/COPY --from an official image; built stand-ins only",
    )
    alias.add_argument("refs", nargs="+", metavar="REF")
    return parser


def _cmd_build(builder: ImageBuilder, names: Sequence[str], force: bool, as_json: bool) -> int:
    start = time.monotonic()
    results = builder.build(names or None, force=force)
    total = time.monotonic() - start
    if as_json:
        print(
            json.dumps(
                {
                    "images": [r.as_dict() for r in results],
                    "no_standin": [{"official": o, "reason": why} for o, why in NO_STANDIN],
                    "seconds": round(total, 2),
                },
                indent=2,
            )
        )
    else:
        print()
        print(format_table(results))
        built = sum(1 for r in results if r.status == "built")
        print(
            f"\n{len(results)} images ({built} built, {len(results) - built} cached) in {total:.1f}s"
        )
    return 0


def _cmd_list(builder: ImageBuilder, as_json: bool) -> int:
    rows = []
    for name in builder.closure(s.name for s in IMAGES):
        ref = builder.ref(name)
        present = builder.exists(ref)
        spec = None if name.startswith("base:") else builder.spec(name)
        rows.append(
            BuildResult(
                name,
                spec.official if spec else None,
                ref,
                "present" if present else "missing",
                0.0,
                builder.size(ref) if present else None,
            )
        )
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0


def _cmd_alias(builder: ImageBuilder, refs: Sequence[str]) -> int:
    for ref in refs:
        spec = find_standin(ref)
        source = builder.ref(spec.name)
        if not builder.exists(source):
            raise BuildError(
                f"{source} is not built: run 'python -m stagectl.sandbox.images build {spec.name}'"
            )
        target = ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"
        builder.tag(source, target)
        print(f"{target} -> {source}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # With --json, stdout carries only the JSON document; progress goes to stderr.
    as_json = bool(getattr(args, "json", False))
    builder = ImageBuilder(
        out=(lambda line: print(line, file=sys.stderr, flush=True)) if as_json else None
    )
    try:
        if args.command == "build":
            return _cmd_build(builder, args.names, args.force, args.json)
        if args.command == "list":
            return _cmd_list(builder, args.json)
        if args.command == "prune":
            for ref in builder.prune():
                print(f"removed {ref}")
            return 0
        return _cmd_alias(builder, args.refs)
    except (BuildError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
