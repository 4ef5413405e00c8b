"""The ``cas`` command. The only place that prints or exits.

Heavy modules (the store, fsspec, s3fs) are imported inside the commands, so
``cas --help`` and ``cas --version`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from casstore._version import __version__
from casstore.errors import (
    CasError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    ObjectNotFound,
)

if TYPE_CHECKING:
    from casstore.store import ObjectInfo, Store

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTEGRITY = 4

EPILOG = """\
digests:
  Digests print in full as blake3:<64 hex>. Where a command takes a digest it
  also takes bare hex, a unique prefix of at least 8 hex characters, or a tag.

store:
  --store URL, else $CAS_STORE, else [store] url in the nearest store.toml
  (current folder or its parents), else the embedded store .cas/ beside it.

exit codes:
  0  success
  1  other error (I/O, configuration, not a store)
  2  usage error (bad arguments, invalid digest or tag name)
  3  not found (object, tag or prefix)
  4  integrity failure (stored bytes do not match their digest)
"""


class UsageError(CasError, ValueError):
    """Arguments that parse but make no sense together."""


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, InvalidDigest | InvalidRefName | UsageError):
        return EXIT_USAGE
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(exc, ObjectNotFound):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def _open(args: argparse.Namespace) -> Store:
    from casstore.store import open_store

    return open_store(args.store, cache=not args.no_cache)


def _progress(label: str, total: int | None, unit: str = "bytes") -> Any:
    from casstore.progress import ProgressBar

    return ProgressBar(label, total, unit=unit)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, sort_keys=False))


# -- commands -----------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from casstore.config import ENV_STORE, FILENAME, find_config
    from casstore.store import init_store

    url = args.url or args.store
    if not url and not os.environ.get(ENV_STORE) and find_config() is None:
        # Nothing configured anywhere: this folder gets a store.toml naming an embedded store.
        with open(FILENAME, "x", encoding="utf-8") as f:
            f.write(STORE_TOML_TEMPLATE)
        print(f"wrote {FILENAME}")
    store, created = init_store(url)
    print(f"{'initialized empty store' if created else 'already a store'}: {store.url}")
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
    store = _open(args)
    if args.tree:
        return _put_trees(args, store)
    for path in args.paths:
        if path == "-":
            with _progress("put -", None) as bar:
                info = store.put_stream(sys.stdin.buffer, progress=bar)
        else:
            if os.path.isdir(path):
                raise UsageError(f"{path} is a directory")
            try:
                total = os.path.getsize(path)
            except OSError as exc:
                raise CasError(f"cannot read {path}: {exc.strerror or exc}") from None
            with _progress(f"put {os.path.basename(path)}", total) as bar:
                info = store.put_file(path, progress=bar)
        if args.json:
            _print_json({"digest": info.digest, "size": info.size, "path": path})
        else:
            print(f"{info.digest}  {path}")
    return EXIT_OK


#: Objects up to this size are verified in memory before reaching stdout.
SPOOL_LIMIT = 64 << 20


def _put_trees(args: argparse.Namespace, store: Store) -> int:
    for source in args.paths:
        with _progress(f"put {os.path.basename(source) or source}", None) as bar:
            info = store.put_tree(source, progress=bar)
        if args.json:
            _print_json(_tree_json(info, source))
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
    from casstore.config import load_config, parse_size
    from casstore.snapshot import tree_digest

    limit = parse_size(load_config().file.tree.max_bytes)
    for source in args.sources:
        info = tree_digest(source, max_bytes=limit)
        if args.json:
            _print_json(_tree_json(info, source))
        else:
            print(f"{info.digest}  {source}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from casstore.progress import human_bytes
    from casstore.treediff import diff_trees

    store = _open(args)
    a, b = store.resolve(args.a), store.resolve(args.b)
    result = diff_trees(store, a, b)
    if args.json:
        _print_json(
            {"a": a, "b": b, "changes": [c.as_json() for c in result.changes], **result.summary()}
        )
        return EXIT_OK
    for change in result.changes:
        if change.old is None:
            assert change.new is not None
            print(f"+ {change.path}  ({_entry_size(change.new, human_bytes)})")
        elif change.new is None:
            print(f"- {change.path}  ({_entry_size(change.old, human_bytes)})")
        else:
            old, new = _entry_size(change.old, human_bytes), _entry_size(change.new, human_bytes)
            print(f"M {change.path}  ({old} -> {new})")
    counts = result.summary()
    print(f"{counts['added']} added, {counts['removed']} removed, {counts['modified']} modified")
    return EXIT_OK


def _entry_size(entry: Any, human: Callable[[float], str]) -> str:
    if entry.type == "file":
        return human(entry.size) + (", executable" if entry.executable else "")
    return f"symlink -> {entry.target}" if entry.type == "symlink" else "empty folder"


def _write_verified_to_stdout(store: Store, digest: str) -> None:
    """Write an object to stdout; no byte goes out before the whole object verified."""
    out = sys.stdout.buffer
    size = store.stat(digest).size
    if size <= SPOOL_LIMIT:
        out.write(store.get_bytes(digest))
    else:
        # Too big for memory: verify in a first pass, then stream (verified again).
        with _progress("verify", size) as bar:
            store.verify(digest, progress=bar)
        with _progress("get", size) as bar:
            store.copy_to(digest, out, progress=bar)
    out.flush()


def cmd_get(args: argparse.Namespace) -> int:
    store = _open(args)
    digest = store.resolve(args.digest)
    if _is_tree(store, digest) and args.output not in (None, "-"):
        fmt = store.get_tree(digest, args.output, format=args.format, force=args.force)
        print(f"{digest}  {args.output} ({fmt})")
        return EXIT_OK
    if args.format:
        raise UsageError("--format applies to trees only")
    if args.output in (None, "-"):
        _write_verified_to_stdout(store, digest)
        return EXIT_OK
    if os.path.isdir(args.output):
        raise UsageError(f"{args.output} is a directory; give a file path")
    total = store.stat(digest).size
    with _progress(f"get {os.path.basename(args.output)}", total) as bar:
        store.get_file(digest, args.output, progress=bar)
    return EXIT_OK


def _is_tree(store: Store, digest: str) -> bool:
    from casstore.tree import is_tree

    with store.open(digest) as reader:
        return is_tree(reader.read(32))


def cmd_cat(args: argparse.Namespace) -> int:
    store = _open(args)
    for spec in args.digests:
        _write_verified_to_stdout(store, store.resolve(spec))
    return EXIT_OK


def cmd_has(args: argparse.Namespace) -> int:
    store = _open(args)
    missing = []
    for spec in args.digests:
        try:
            present = store.has(store.resolve(spec))
        except ObjectNotFound:
            present = False
        if not present:
            missing.append(spec)
    if args.json:
        _print_json({"present": len(args.digests) - len(missing), "missing": missing})
    else:
        for spec in missing:
            print(spec)
    return EXIT_NOT_FOUND if missing else EXIT_OK


def cmd_stat(args: argparse.Namespace) -> int:
    store = _open(args)
    info = store.stat(store.resolve(args.digest))
    if args.json:
        _print_json(_info_json(info))
    else:
        from casstore.progress import human_bytes

        ratio = info.stored_size / info.size if info.size else 1.0
        print(f"digest:       {info.digest}")
        print(f"size:         {info.size} ({human_bytes(info.size)})")
        print(f"stored size:  {info.stored_size} ({ratio:.1%} of size)")
        print(f"encoding:     {info.encoding}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    store = _open(args)
    for digest in sorted(store.iter_digests()):
        if args.json:
            _print_json({"digest": digest})
        else:
            print(digest)
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.delete:
        if args.digest is not None:
            raise UsageError("cas tag -d takes a tag name only")
        store.untag(args.name)
        print(f"deleted tag {args.name}")
        return EXIT_OK
    if args.digest is None:
        raise UsageError("cas tag needs NAME DIGEST (or -d NAME)")
    digest = store.resolve(args.digest)
    store.tag(args.name, digest)
    print(f"{digest}  {args.name}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    store = _open(args)
    tags = store.tags()
    if args.json:
        _print_json(tags)
    else:
        for name, digest in tags.items():
            print(f"{digest}  {name}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    store = _open(args)
    worst = EXIT_OK
    for spec in args.digests:
        digest = store.resolve(spec)
        try:
            info = store.verify(digest)
            status, detail = "ok", f"{info.size} bytes"
        except ObjectNotFound:
            status, detail = "missing", ""
            worst = max(worst, EXIT_NOT_FOUND)
        except IntegrityError as exc:
            status, detail = "corrupt", str(exc)
            worst = EXIT_INTEGRITY
        if args.json:
            _print_json({"digest": digest, "status": status, "detail": detail})
        else:
            print(f"{status:8} {digest}" + (f"  {detail}" if status == "corrupt" else ""))
    return worst


def _other_store(args: argparse.Namespace, spec: str) -> Store:
    """A store named by a ``[remotes.NAME]`` of store.toml, or by its URL."""
    from casstore.config import load_config
    from casstore.store import open_store

    config = load_config()
    if spec in config.file.remotes:
        return open_store(config.remote_url(spec), config=config, cache=not args.no_cache)
    if "://" not in spec and "/" not in spec and not os.path.exists(spec):
        config.remote_url(spec)  # raises: names the remotes that do exist
    return open_store(spec, config=config, cache=not args.no_cache)


def _transfer(args: argparse.Namespace, src: Store, dst: Store, verb: str) -> int:
    from casstore.progress import human_bytes
    from casstore.transfer import transfer

    roots = [src.resolve(spec) for spec in args.digests]
    with _progress(verb, None, unit="objects") as bar:

        def plan(count: int) -> None:
            bar.total = count

        result = transfer(
            src, dst, roots, concurrency=args.jobs, on_object=lambda _size: bar(1), on_plan=plan
        )
    if args.json:
        _print_json(
            {
                "roots": roots,
                "from": src.url,
                "to": dst.url,
                "copied": result.copied,
                "bytes": result.copied_bytes,
                "present": result.present,
            }
        )
    elif result.copied == 0:
        print(f"{verb}ed nothing: all {result.present} objects already present")
    else:
        print(
            f"{verb}ed {result.copied} objects ({human_bytes(result.copied_bytes)}), "
            f"{result.present} already present"
        )
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    return _transfer(args, _open(args), _other_store(args, args.to), "push")


def cmd_pull(args: argparse.Namespace) -> int:
    return _transfer(args, _other_store(args, args.source), _open(args), "pull")


# -- parser -------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"cas: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cas",
        description="casstore: store artifacts by the BLAKE3 digest of their content.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cas {__version__}")
    parser.add_argument("--store", metavar="URL", help="store URL or folder (overrides $CAS_STORE)")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    parser.add_argument(
        "--no-cache", action="store_true", help="read remote stores directly, not via the cache"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "create a store (the configured one, or URL)")
    p.add_argument("url", nargs="?", metavar="URL", help="where to create it")

    p = add("put", cmd_put, "store files (or - for stdin) and print their digests")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to store; - reads stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument(
        "--tree",
        action="store_true",
        help="store a snapshot as a tree: PATH is a folder, .zip, .tar, .tar.gz or .tar.zst "
        "(detected from content), or - for a tar stream on stdin",
    )

    p = add("tree", cmd_tree, "print the tree digest of a snapshot, storing nothing")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="folder, zip, tar[.gz|.zst], -")
    p.add_argument("--json", action="store_true", help="one JSON object per source")

    p = add("diff", cmd_diff, "show which paths differ between two trees")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("get", cmd_get, "write an object's verified content to a file or stdout")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("-o", "--output", metavar="PATH", help="file to write (default stdout)")
    p.add_argument(
        "--format",
        choices=["dir", "zip", "tar", "tar.gz", "tar.zst"],
        help="for a tree: what to write (default: from PATH's suffix, else a folder)",
    )
    p.add_argument("--force", action="store_true", help="for a tree: write into a non-empty folder")

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

    p = add("tag", cmd_tag, "name an object (a ref under refs/tags/)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("digest", nargs="?", metavar="DIGEST")
    p.add_argument("-d", "--delete", action="store_true", help="delete the tag NAME")

    p = add("tags", cmd_tags, "list tags and the digests they name")
    p.add_argument("--json", action="store_true", help="print a JSON object of name: digest")

    p = add("verify", cmd_verify, "re-hash stored objects (exit 3 if missing, 4 if corrupt)")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("--json", action="store_true", help="one JSON object per digest")
    p = add("push", cmd_push, "copy objects and all they reference to another store")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("--to", required=True, metavar="REMOTE", help="a [remotes.NAME] or a URL")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-j", "--jobs", type=int, default=16, help="objects copied at once (16)")

    p = add("pull", cmd_pull, "copy objects and all they reference from another store")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument(
        "--from", dest="source", required=True, metavar="REMOTE", help="a [remotes.NAME] or a URL"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-j", "--jobs", type=int, default=16, help="objects copied at once (16)")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``cas`` with ``argv``; returns the exit code instead of exiting."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("cas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (cas cat ... | head): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (CasError, OSError) as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        message = str(exc) if isinstance(exc, CasError) else _os_message(exc)
        print(f"cas: {message}", file=sys.stderr)
        return _exit_code(exc)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))
