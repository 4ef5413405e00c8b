"""Commands on objects: init, put, tree, get, cat, has, stat, ls."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from casstore.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    Adder,
    open_from_args,
    print_json,
    progress,
)
from casstore.errors import CasError, DestinationError, ObjectNotFound, UsageError

if TYPE_CHECKING:
    from casstore.store.objects import ObjectInfo, Store

#: Objects up to this size are verified in memory before reaching stdout.
SPOOL_LIMIT = 64 << 20


def cmd_init(args: argparse.Namespace) -> int:
    from casstore.config import ENV_STORE, FILENAME, find_config
    from casstore.store.open import init_store

    url = args.url or args.store
    if not url and not os.environ.get(ENV_STORE) and find_config() is None:
        # Nothing configured anywhere: this folder gets a store.toml naming an embedded store.
        with open(FILENAME, "x", encoding="utf-8") as f:
            f.write(STORE_TOML_TEMPLATE)
        print(f"wrote {FILENAME}")
    store, created = init_store(url, create_bucket=args.create_bucket)
    print(f"{'initialized empty store' if created else 'already a store'}: {store.url}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from casstore.config import ENV_STORE, find_config, load_config, resolve_location
    from casstore.errors import NotAStore

    try:
        store: Store | None = open_from_args(args)
    except NotAStore:  # which store would be used is worth knowing before cas init too
        store = None
    url = store.url if store is not None else resolve_location(args.store, load_config()).url
    if args.url:
        # For scripts: `export CAS_STORE=$(cas info --url)` makes every process that a
        # script starts, wherever it runs, use this store.
        print(url)
        return EXIT_OK
    config = find_config()
    if args.store:
        chosen = "--store"
    elif os.environ.get(ENV_STORE):
        chosen = f"${ENV_STORE}"
    elif config is not None and load_config(config).file.store.url:
        chosen = f"[store] url of {config}"
    else:
        chosen = f"the embedded store beside {config}"
    facts = {
        "url": url,
        "chosen_by": chosen,
        "config": str(config) if config else None,
        "created": store is not None,
        "format": store.format_version if store is not None else None,
        "read_only": store.read_only if store is not None else None,
    }
    if args.json:
        print_json(facts)
        return EXIT_OK
    print(f"store:     {url}")
    print(f"chosen by: {chosen}")
    if store is None:
        print("created:   no (cas init creates it)")
        return EXIT_OK
    print(f"format:    {store.format_version}")
    print(f"writable:  {'no (read-only)' if store.read_only else 'yes'}")
    return EXIT_OK


STORE_TOML_TEMPLATE = """\
# casstore configuration: see the README.
[store]
# With no url, the store is the folder .cas/ beside this file.
# url = "s3://bucket/prefix"
compression_level = 3
"""


def _info_json(info: ObjectInfo, **extra: object) -> dict[str, object]:
    return {
        "digest": info.digest,
        "size": info.size,
        "stored_size": info.stored_size,
        "encoding": info.encoding,
        **extra,
    }


def cmd_put(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    # Refused before any work, even when everything given is already stored.
    store.require_writable("put --tree" if args.tree else "put")
    if args.tree:
        return _put_trees(args, store)
    for path in args.paths:
        if path == "-":
            with progress("put -", None) as bar:
                info = store.put_stream(sys.stdin.buffer, progress=bar)
        else:
            if os.path.isdir(path):
                raise UsageError(
                    f"{path} is a folder: store it as a snapshot with cas put --tree {path}"
                )
            try:
                total = os.path.getsize(path)
            except OSError as exc:
                raise CasError(f"cannot read {path}: {exc.strerror or exc}") from None
            with progress(f"put {os.path.basename(path)}", total) as bar:
                info = store.put_file(path, progress=bar)
        if args.json:
            print_json({"digest": info.digest, "size": info.size, "path": path})
        else:
            print(f"{info.digest}  {path}")
    return EXIT_OK


def _put_trees(args: argparse.Namespace, store: Store) -> int:
    for source in args.paths:
        with progress(f"put {os.path.basename(source) or source}", None) as bar:
            info = store.put_tree(source, progress=bar)
        if args.json:
            print_json(_tree_json(info, source))
        else:
            print(f"{info.digest}  {source}")
    return EXIT_OK


def _tree_json(info: Any, source: str) -> dict[str, object]:
    return {
        "digest": info.digest,
        "size": info.size,
        "path": source,
        "files": info.files,
        "file_bytes": info.file_bytes,
    }


def cmd_tree(args: argparse.Namespace) -> int:
    from casstore.config import TREE_MAX_BYTES, load_config, parse_size
    from casstore.format.tree import Limits
    from casstore.trees.ingest import tree_digest

    config = load_config()
    limit = parse_size(config.file.tree.max_bytes, TREE_MAX_BYTES)
    for source in args.sources:
        info = tree_digest(source, max_bytes=limit, limits=Limits.of(config))
        if args.json:
            print_json(_tree_json(info, source))
        else:
            print(f"{info.digest}  {source}")
    return EXIT_OK


def _write_verified_to_stdout(store: Store, digest: str) -> None:
    """Write an object to stdout; no byte goes out before the whole object verified."""
    out = sys.stdout.buffer
    size = store.stat(digest).size
    if size <= SPOOL_LIMIT:
        out.write(store.get_bytes(digest))
    else:
        # Too big for memory: verify in a first pass, then stream (verified again).
        with progress("verify", size) as bar:
            store.verify(digest, progress=bar)
        with progress("get", size) as bar:
            store.copy_to(digest, out, progress=bar)
    out.flush()


def cmd_get(args: argparse.Namespace) -> int:
    from casstore.format.records import is_tree_kind
    from casstore.graph.closure import kind_of_stored

    store = open_from_args(args)
    digest = store.resolve(args.digest)
    to_stdout = args.output in (None, "-")
    output = args.output
    occupied = not to_stdout and os.path.lexists(output)
    if occupied and os.path.isdir(output) and not os.path.islink(output):
        occupied = bool(os.listdir(output))  # an empty folder is fine
    if occupied and not args.force:
        raise DestinationError(f"{output} exists: pass --force to replace it")
    tree = is_tree_kind(kind_of_stored(store, digest))  # never a blob that only looks like one
    if tree and (not to_stdout or args.format):
        return _get_tree(args, store, digest, to_stdout)
    if args.format:
        raise UsageError(f"--format applies to trees only; {digest} is a file")
    if to_stdout:
        _write_verified_to_stdout(store, digest)
        return EXIT_OK
    if os.path.isdir(args.output):
        raise UsageError(f"{args.output} is a folder; give a file path")
    total = store.stat(digest).size
    with progress(f"get {os.path.basename(args.output)}", total) as bar:
        store.get_file(digest, args.output, progress=bar)
    return EXIT_OK


def _get_tree(args: argparse.Namespace, store: Store, digest: str, to_stdout: bool) -> int:
    if not to_stdout:
        fmt = store.get_tree(digest, args.output, format=args.format, force=args.force)
        print(f"{digest}  {args.output} ({fmt})")
        return EXIT_OK
    from casstore.trees.archive_out import write_archive
    from casstore.trees.checkout import load

    if args.format == "dir":
        raise UsageError("--format dir writes a folder: give it with -o DIR")
    if sys.stdout.isatty():
        pipe = "" if args.format == "zip" else " or pipe it (| tar -t)"
        raise UsageError(
            f"refusing to write a {args.format} archive to a terminal: redirect it "
            f"(> snapshot.{args.format}){pipe}, or give -o FILE"
        )
    out = sys.stdout.buffer
    # Each file is verified before any of its bytes reach stdout, which cannot be undone.
    entries = load(store, digest)
    write_archive(store, entries, out, args.format, store.compression_level, verify_first=True)
    out.flush()
    return EXIT_OK


def cmd_cat(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    for spec in args.digests:
        _write_verified_to_stdout(store, store.resolve(spec))
    return EXIT_OK


def cmd_has(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    missing = []
    from casstore.errors import InvalidDigest
    from casstore.format.digest import looks_like_digest

    for spec in args.digests:
        if not looks_like_digest(spec):
            raise InvalidDigest(
                f"{spec!r} is not a digest (blake3:<64 hex>, or a prefix of 8 hex or more)"
            )
        try:
            present = store.has(store.resolve(spec))
        except ObjectNotFound:
            present = False
        if not present:
            missing.append(_full(spec))
    if args.json:
        print_json({"present": len(args.digests) - len(missing), "missing": missing})
    else:
        for spec in missing:
            print(spec)
    return EXIT_NOT_FOUND if missing else EXIT_OK


def _full(spec: str) -> str:
    """A digest as digests print (``blake3:<hex>``); a prefix that matched nothing as typed."""
    from casstore.errors import InvalidDigest
    from casstore.format.digest import parse_digest

    try:
        return parse_digest(spec)
    except InvalidDigest:
        return spec


def cmd_stat(args: argparse.Namespace) -> int:
    from casstore.config import counted, human_bytes
    from casstore.graph.describe import describe

    store = open_from_args(args)
    info = describe(store, store.resolve(args.digest))
    if args.json:
        print_json({**info.__dict__, "what": info.text()})
        return EXIT_OK
    ratio = info.stored_size / info.size if info.size else 1.0
    print(f"digest:       {info.digest}")
    print(f"kind:         {info.text()}")
    print(f"size:         {info.size} ({human_bytes(info.size)})")
    if info.file_bytes is not None:
        print(f"holds:        {counted(info.files or 0, 'files')}, {human_bytes(info.file_bytes)}")
    print(f"stored size:  {info.stored_size} ({ratio:.1%} of size)")
    print(f"encoding:     {info.encoding}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    for digest in sorted(store.iter_digests()):
        if args.json:
            print_json({"digest": digest})
        else:
            print(digest)
    return EXIT_OK


def register(add: Adder) -> None:
    p = add("init", cmd_init, "create a store (the configured one, or URL)")
    p.add_argument("url", nargs="?", metavar="URL", help="where to create it")
    p.add_argument(
        "--create-bucket", action="store_true", help="for s3:// URLs: create the bucket too"
    )

    p = add("info", cmd_info, "say which store is in use, and how it was chosen")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--url", action="store_true", help="print only its URL")
    shown.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add("put", cmd_put, "store files (or - for stdin) and print their digests")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to store; - reads stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument(
        "--tree",
        action="store_true",
        help="store a snapshot as a tree: PATH is a folder, a .zip, or a .tar plain or compressed "
        "(gzip, zstd, bzip2, xz: detected from content), or - for a tar stream on stdin",
    )

    p = add("tree", cmd_tree, "print the tree digest of a snapshot, storing nothing")
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="folder, zip, tar[.gz|.zst|.bz2|.xz], -"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per source")

    p = add("get", cmd_get, "write an object's verified content to a file or stdout")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("-o", "--output", metavar="PATH", help="file to write (default stdout)")
    p.add_argument(
        "--format",
        choices=["dir", "zip", "tar", "tar.gz", "tar.zst"],
        help="for a tree: what to write (default: from PATH's suffix, else a folder); "
        "without -o, an archive is streamed to stdout",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file, or the contents of a non-empty folder",
    )

    p = add("cat", cmd_cat, "write objects' verified content to stdout")
    p.add_argument("digests", nargs="+", metavar="DIGEST")

    p = add("has", cmd_has, "exit 0 if every object is present; print the missing ones")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add("stat", cmd_stat, "show an object's size, stored size and encoding")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("ls", cmd_ls, "list every object's digest")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
