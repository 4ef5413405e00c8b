"""Reading a snapshot source as members: a folder, a tar stream (plain, gzip,
zstd, bzip2 or xz, detected from its first bytes) or a zip file.

One streaming pass, never extracted to disk. Unsafe or unsupported members
(devices, FIFOs, paths that climb out) and archives past the size bound are
refused with an :class:`ArchiveError` naming the member.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import zipfile
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from casstore.errors import ArchiveError, CasError
from casstore.format.tree import normalize_path
from casstore.trees.folders import folder_members
from casstore.trees.members import EXECUTABLE, SPECIAL, Counter, Member
from casstore.trees.tarstream import MAX_META, Mapped, TarHeader, TarReader, Windowed

if TYPE_CHECKING:
    from casstore.format.objects import Readable

#: Tar members up to this size come whole, as views of the archive; larger ones are
#: read a piece at a time, so that memory never grows with a member.
VIEWED_MEMBER_MAX = 64 << 20
#: Default bound on the bytes a snapshot may unpack to (a decompression bomb guard).
DEFAULT_MAX_BYTES = 1 << 40
#: The buffer asked of a pipe on stdin (Linux lets any user have up to 1 MiB).
PIPE_SIZE = 1 << 20

_MAGIC = {
    b"\x1f\x8b": "gz",
    b"\x28\xb5\x2f\xfd": "zst",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
}


def read_members(
    source: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Generator[Member, None, None]:
    """The members of ``source`` (``-`` is a tar stream on stdin)."""
    counter = Counter(max_bytes)
    if str(source) == "-":
        yield from _tar_members(cast(BinaryIO, Signalled(sys.stdin.fileno())), counter, "-")
        return
    path = Path(source)
    if path.is_dir():
        yield from folder_members(path, counter)
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the error check
    except OSError as exc:
        raise ArchiveError(f"cannot read {source}: {exc.strerror or exc}") from None
    with f:
        head = f.read(512)
        f.seek(0)
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            yield from _zip_members(f, counter, str(source))
        else:
            yield from _tar_members(f, counter, str(source), mappable=True)


def detect_compression(head: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


class Signalled(io.RawIOBase):
    """A pipe (stdin) whose waiting read Ctrl-C or SIGTERM cuts short. The kernel hands a
    signal to any thread, and only the thread that gets it has its system call cut short:
    when a compressing thread got it, the main thread waited on in its read, and its
    handler never ran. So a read waits for data a second at a time, between which the
    interpreter runs a handler that is due."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        # A pipe of 64 KiB made each read that much, every one a select and a read, and
        # a window of the tar reader: 1 MiB, where the system allows it (Linux).
        with suppress(OSError, AttributeError):
            import fcntl

            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        import select

        while not select.select([self._fd], [], [], 1.0)[0]:
            pass
        return os.readv(self._fd, [buffer])


class Prefixed(io.RawIOBase):
    """A stream with some bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        # Straight into the buffer, one copy fewer; what has come (readinto1), when a
        # pipe's producer may stall.
        readinto = getattr(self._rest, "readinto1", None) or getattr(self._rest, "readinto", None)
        if readinto is not None:
            return int(readinto(buffer) or 0)
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _decompressed(stream: BinaryIO, what: str, mappable: bool) -> IO[bytes] | Mapped | Windowed:
    """The tar stream inside ``stream``: mapped when ``mappable``, plain and a file; a
    compressed file decompressed on a thread of its own, ahead of the parsing."""
    head = b""
    while len(head) < 512 and (more := stream.read(512 - len(head))):  # a pipe: in pieces
        head += more
    compression = detect_compression(head)
    raw = io.BufferedReader(Prefixed(head, stream), 1 << 20)
    regular = mappable and stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    if compression is None:
        empty = head == bytes(512)  # an archive of nothing: only end-of-archive blocks
        if len(head) < 512 or (
            head[257:262] != b"ustar" and not empty and not _looks_like_tar(head)
        ):
            expected = "a tar" if what == "-" else "a folder, a zip or a tar"
            raise ArchiveError(f"{what}: not {expected} (plain or compressed)")
        if regular:
            with suppress(OSError):  # no room to map it (a ulimit -v): read it instead
                return Mapped(stream.fileno())
        return raw
    # Read ahead from a file only: a pipe's read may wait for ever (a stalled producer),
    # and a thread waiting in it held up Ctrl-C, the exit, and an error already found.
    return Windowed(_decoder(compression, raw), ahead=regular)


def _decoder(compression: str, raw: IO[bytes]) -> IO[bytes]:
    if compression == "zst":
        import zstandard

        return cast(
            IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        )
    if compression == "gz":
        try:  # ISA-L's igzip: twice the standard library's speed
            from isal import igzip

            return cast(IO[bytes], igzip.IGzipFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
        except ImportError:
            import gzip

            return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bz2":
        import bz2

        return cast(IO[bytes], bz2.BZ2File(raw))
    import lzma

    return cast(IO[bytes], lzma.LZMAFile(raw))


def _looks_like_tar(head: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


class corrupt_as_archive_error:  # used as a function, in a with
    """Decompressor and container errors, while reading ``what``, as one ArchiveError.

    A class, not a generator: it is entered for every member of a snapshot, and a
    generator's context manager cost a tenth of a member's parsing."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        # The store's own failures (a full disk) are not the archive's.
        if exc is None or isinstance(exc, CasError):
            return
        if isinstance(exc, _corrupt_errors()):
            raise ArchiveError(f"{self._what}: a truncated or corrupt archive ({exc})") from None


@cache  # asked for every member: the imports and the tuple once per process
def _corrupt_errors() -> tuple[type[Exception], ...]:
    import lzma
    import zlib

    import zstandard

    try:
        from isal import isal_zlib
    except ImportError:
        isal: tuple[type[Exception], ...] = ()
    else:
        isal = (cast(type[Exception], isal_zlib.error),)
    return (
        tarfile.TarError,
        lzma.LZMAError,
        zipfile.BadZipFile,
        zlib.error,
        zstandard.ZstdError,
        EOFError,
        OSError,
        *isal,
    )


def _tar_members(
    stream: BinaryIO, counter: Counter, what: str, *, mappable: bool = False
) -> Iterator[Member]:
    # Closed here, never left to the garbage collector: a compressed stream's reading
    # thread is joined on close, which deadlocks when a collection runs inside
    # threading's own bookkeeping (seen with igzip's own thread as a hang of a test on
    # a loaded machine).
    with (
        corrupt_as_archive_error(what),
        closing(_decompressed(stream, what, mappable)) as decompressed,
    ):
        reader = TarReader(decompressed, what)
        for header in reader.headers():
            member = _tar_member(header, reader, counter)
            if member is not None:
                yield member


def _tar_member(header: TarHeader, reader: TarReader, counter: Counter) -> Member | None:
    if not header.name:
        raise ArchiveError("a tar member without a name")
    path = normalize_path(header.name, header.name)
    if not path:
        return None  # the archive's root folder ("./")
    executable = bool(header.mode & EXECUTABLE)
    if header.kind == "file":
        counter.add(header.size, header.name)
        if header.size <= VIEWED_MEMBER_MAX:
            return Member(path, "file", header.size, executable, data=reader.view())
        return Member(path, "file", header.size, executable, content=reader)  # type: ignore[arg-type]
    if header.kind == "dir":
        return Member(path, "dir")
    if header.kind == "symlink":
        return Member(path, "symlink", target=header.linkname)
    if header.kind == "hardlink":
        target = normalize_path(header.linkname, header.name)
        if not target:  # "" or "./": the archive's root, never a file
            raise ArchiveError(f"{header.name!r}: a hard link to no file ({header.linkname!r})")
        return Member(path, "file", hardlink=target)
    raise ArchiveError(f"{header.name!r}: {SPECIAL}")


def _zip_members(f: BinaryIO, counter: Counter, what: str) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{what}: a truncated or corrupt zip ({exc})") from None
    with archive:
        for info in archive.infolist():
            path = normalize_path(info.filename, info.filename)
            if not path:
                continue
            # Unix mode bits only mean something in zips made on Unix (create_system 3);
            # zipfile.writestr and many tools leave the file-type bits at 0.
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if info.is_dir():
                yield Member(path, "dir")
                continue
            if info.compress_type not in _ZIP_METHODS:
                raise ArchiveError(
                    f"{info.filename!r}: zip compression method {info.compress_type} is not "
                    "read (stored and deflate are; zipfile expands others without bound)"
                )
            if stat.S_ISLNK(mode):
                if info.file_size > MAX_META:
                    raise ArchiveError(
                        f"{info.filename!r}: a symlink target of {info.file_size} bytes "
                        f"(at most {MAX_META})"
                    )
                with _zip_errors(info.filename):
                    target = archive.read(info)
                yield Member(path, "symlink", target=target.decode("utf-8", "surrogateescape"))
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                raise ArchiveError(f"{info.filename!r}: {SPECIAL}")
            counter.add(info.file_size, info.filename)
            with _zip_errors(info.filename), archive.open(info) as content:
                executable = bool(mode & EXECUTABLE)
                yield Member(path, "file", info.file_size, executable, content=content)


#: Zip methods read: zipfile inflates deflate a piece at a time, but decompresses a
#: bzip2 or LZMA member's whole input buffer at once (a 4 GB member took 7.6 GB).
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


@contextmanager
def _zip_errors(name: str) -> Iterator[None]:
    """What zipfile raises for a member it cannot read, as one ArchiveError."""
    import zlib

    try:
        yield
    except RuntimeError as exc:  # zipfile's word for an encrypted member
        raise ArchiveError(f"{name!r}: encrypted in the zip ({exc})") from None
    except NotImplementedError as exc:  # Deflate64, PPMd and other methods
        raise ArchiveError(f"{name!r}: a compression method zipfile cannot read ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{name!r}: corrupt in the zip ({exc})") from None
