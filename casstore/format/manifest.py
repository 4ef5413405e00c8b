"""Run manifests, grading records and suite records: every input and output of a run,
what its grading scored, and how a suite's scores were aggregated, all by digest.

All are records (``docs/FORMAT.md``): canonical JSON whose first key is
``"casstore"`` naming the kind, then ``schema_version`` as ``MAJOR.MINOR``.
Fields are only ever added with defaults and a new minor version, so an older
reader decodes a newer manifest (it ignores what it does not know); a new
major version is refused by name. A record's digest is the digest of its
stored bytes: it is never re-encoded to be hashed.
"""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import msgspec

from casstore.errors import ManifestError
from casstore.format.records import GRADING_KIND, RUN_KIND, SUITE_KIND, record_kind

#: 1.1 added what a replay and a diff need: how the runner was invoked, named configs,
#: environment settings and installed packages. A 1.0 manifest reads as a 1.1 one
#: with those fields empty.
SCHEMA_VERSION = "1.1"
_READABLE_MAJOR = 1
#: The artifact of a run an orchestrator completed that holds the runner's own manifest.
RUNNER_MANIFEST = "runner_manifest"


class Ref(msgspec.Struct, frozen=True):
    """A reference to a stored object: its digest and its size in bytes."""

    digest: str
    size: int


class Code(msgspec.Struct, frozen=True, kw_only=True):
    """Which code produced the record. Empty strings where unknown (no git)."""

    git_sha: str = ""
    git_dirty: bool | None = None
    python_version: str = ""
    casstore_version: str = ""
    #: The dependency lock file's name relative to the checkout, and its content.
    lock_file_name: str = ""
    lock_file: Ref | None = None


class Host(msgspec.Struct, frozen=True, kw_only=True):
    """Where the run ran; recorded only when asked for."""

    hostname: str = ""
    platform: str = ""
    machine: str = ""
    cpu_count: int = 0


class Invocation(msgspec.Struct, frozen=True, kw_only=True):
    """How the runner was started, so a replay can start it again (schema 1.1)."""

    #: The program before the arguments: ``["python", "-m", "runner.main"]``, or a script.
    program: list[str] = []
    #: The folder it ran in, relative to the checkout of its code (``agents``); empty when
    #: outside it.
    cwd: str = ""
    #: Its arguments, secrets redacted.
    args: list[str] = []
    #: Argument index -> the role of the input file the manifest holds there: a replay
    #: writes that input and passes its path.
    files: dict[str, str] = {}
    #: Argument index -> the name of a value to supply at replay (a redacted secret, a URL
    #: of the recording machine's services).
    placeholders: dict[str, str] = {}


class RunManifest(msgspec.Struct, frozen=True, kw_only=True, tag_field="casstore", tag=RUN_KIND):
    """What produced a run, and what it produced.

    Inputs and outputs are :class:`Ref` s; ``None`` means never attached.
    Snapshots are trees; configs and initial messages are canonical JSON with
    secrets redacted.
    """

    schema_version: str = SCHEMA_VERSION
    created_at: str = ""
    code: Code = Code()
    # run parameters
    #: The runner program as it was invoked (``sys.argv[0]``), for replay's command line.
    runner: str = ""
    trajectory_id: str = ""
    agent_config_id: str = ""
    agent_config_values: dict[str, Any] = {}
    orchestrator_model: str = ""
    orchestrator_extra_args: dict[str, Any] = {}
    seed: int | None = None
    deterministic: bool = False
    # inputs
    agent_config: Ref | None = None
    orchestrator_config: Ref | None = None
    initial_messages: Ref | None = None
    mcp_config: Ref | None = None
    initial_snapshot: Ref | None = None
    # outputs
    final_snapshot: Ref | None = None
    trajectory: Ref | None = None
    #: Snapshots of other roles, by role.
    snapshots: dict[str, Ref] = {}
    #: Any other named artifact.
    artifacts: dict[str, Ref] = {}
    host: Host | None = None
    # 1.1
    invocation: Invocation | None = None
    #: Other inputs, by name, canonical JSON with secrets redacted (the effective agent
    #: config, custom args, task fields...).
    configs: dict[str, Ref] = {}
    #: Environment settings that change behaviour (listed at recording), secrets redacted.
    environment: dict[str, str] = {}
    #: The recording interpreter's installed distributions: canonical JSON of name: version.
    packages: Ref | None = None

    def snapshot(self, role: str) -> Ref | None:
        if role == "initial":
            return self.initial_snapshot
        if role == "final":
            return self.final_snapshot
        return self.snapshots.get(role)

    def roles(self) -> dict[str, Ref]:
        """Every attached object by role name (``final_snapshot``, ``artifact:log``...)."""
        out: dict[str, Ref] = {}
        for name in REF_FIELDS:
            ref = getattr(self, name)
            if ref is not None:
                out[name] = ref
        if self.code.lock_file is not None:
            out["lock_file"] = self.code.lock_file
        out.update({f"{role}_snapshot": ref for role, ref in self.snapshots.items()})
        out.update({f"config:{name}": ref for name, ref in self.configs.items()})
        if self.packages is not None:
            out["packages"] = self.packages
        out.update({f"artifact:{name}": ref for name, ref in self.artifacts.items()})
        return out


REF_FIELDS = (
    "agent_config",
    "orchestrator_config",
    "initial_messages",
    "mcp_config",
    "initial_snapshot",
    "final_snapshot",
    "trajectory",
)


class GradingRecord(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="casstore", tag=GRADING_KIND
):
    """What a grader scored, with which inputs, and the result."""

    schema_version: str = SCHEMA_VERSION
    created_at: str = ""
    code: Code = Code()
    #: The run manifest that was graded.
    run: Ref
    judge_model: str = ""
    grading_settings: Ref | None = None
    verifiers: Ref | None = None
    eval_configs: Ref | None = None
    scoring_config: Ref | None = None
    #: The role of the snapshot the grader compared against, and that snapshot.
    baseline_role: str = ""
    baseline_snapshot: Ref | None = None
    grades: Ref | None = None
    score: float | None = None
    artifacts: dict[str, Ref] = {}
    # 1.1
    #: The snapshots the grader read, by role, as tree digests: the run's, unless
    #: ``mismatched`` names the role.
    graded_snapshots: dict[str, Ref] = {}
    #: Roles whose graded snapshot is not the run's (recorded in best-effort mode).
    mismatched: list[str] = []

    def roles(self) -> dict[str, Ref]:
        out = {"run": self.run}
        for name in ("grading_settings", "verifiers", "eval_configs", "scoring_config"):
            ref = getattr(self, name)
            if ref is not None:
                out[name] = ref
        if self.baseline_snapshot is not None:
            out["baseline_snapshot"] = self.baseline_snapshot
        if self.grades is not None:
            out["grades"] = self.grades
        if self.code.lock_file is not None:
            out["lock_file"] = self.code.lock_file
        out.update({f"graded:{role}": ref for role, ref in self.graded_snapshots.items()})
        out.update({f"artifact:{name}": ref for name, ref in self.artifacts.items()})
        return out


class Aggregate(msgspec.Struct, frozen=True):
    """The mean score of some entries (None when none has a score) and how many had one."""

    mean: float | None
    count: int


class SuiteEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One graded task of a suite: its grading record, its labels (``domain``, ``task``)
    and the score that record holds (checked against it by ``cas verify``)."""

    grading: Ref
    labels: dict[str, str] = {}
    score: float | None = None


class SuiteRecord(msgspec.Struct, frozen=True, kw_only=True, tag_field="casstore", tag=SUITE_KIND):
    """How per-task grades became a suite's scores: the entries and the aggregates."""

    schema_version: str = SCHEMA_VERSION
    created_at: str = ""
    name: str = ""
    entries: list[SuiteEntry] = []
    #: The mean over every entry with a score.
    overall: Aggregate = Aggregate(None, 0)
    #: Label -> value -> the mean of the entries with that value (``domain`` -> ``Law``).
    by_label: dict[str, dict[str, Aggregate]] = {}

    def roles(self) -> dict[str, Ref]:
        return {_entry_role(i, e): e.grading for i, e in enumerate(self.entries)}


def _entry_role(index: int, entry: SuiteEntry) -> str:
    label = entry.labels.get("task") or "/".join(entry.labels.values())
    return f"entry:{label}" if label else f"entry:{index}"


def aggregate(entries: list[SuiteEntry]) -> tuple[Aggregate, dict[str, dict[str, Aggregate]]]:
    """The overall and per-label aggregates of ``entries``: the one computation both
    recording and verifying a suite use (fsum: the same whatever the entries' order)."""
    import math

    def mean(scores: list[float]) -> Aggregate:
        return Aggregate(math.fsum(scores) / len(scores) if scores else None, len(scores))

    scored = [e for e in entries if e.score is not None]
    groups: dict[str, dict[str, list[float]]] = {}
    for entry in scored:
        for key, value in entry.labels.items():
            groups.setdefault(key, {}).setdefault(value, []).append(float(entry.score or 0))
    by_label = {
        key: {value: mean(scores) for value, scores in sorted(values.items())}
        for key, values in sorted(groups.items())
    }
    return mean([float(e.score or 0) for e in scored]), by_label


Record = RunManifest | GradingRecord | SuiteRecord
_R = TypeVar("_R", RunManifest, GradingRecord, SuiteRecord)
_ENCODER = msgspec.json.Encoder(order="deterministic")


class _Version(msgspec.Struct):
    schema_version: str = ""


_KINDS: dict[str, type[RunManifest] | type[GradingRecord] | type[SuiteRecord]] = {
    RUN_KIND: RunManifest,
    GRADING_KIND: GradingRecord,
    SUITE_KIND: SuiteRecord,
}
_VERSION = msgspec.json.Decoder(_Version)


def utc_timestamp() -> str:
    """The current time as the records write it (UTC, RFC 3339, seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(record: Record) -> bytes:
    """The canonical bytes of a record: fields in declared order, dict keys sorted."""
    return _ENCODER.encode(record)


def decode(data: bytes, what: str = "record") -> Record:
    """A run manifest, grading record or suite record from its bytes."""
    kind = record_kind(data)
    if kind == RUN_KIND:
        return _decode_as(RunManifest, data, what)
    if kind == GRADING_KIND:
        return _decode_as(GradingRecord, data, what)
    if kind == SUITE_KIND:
        return _decode_as(SuiteRecord, data, what)
    found = f"a {kind} record" if kind else "not a casstore record"
    raise ManifestError(f"{what}: not a run manifest, grading record or suite ({found})")


def decode_as(cls: type[_R], data: bytes, what: str = "record") -> _R:
    """A record of kind ``cls``; any other kind is a ManifestError."""
    kind = record_kind(data)
    expected = next(k for k, c in _KINDS.items() if c is cls)
    if kind != expected:
        found = f"a {kind} record" if kind else "not a casstore record"
        raise ManifestError(f"{what}: not a {expected} ({found})")
    return _decode_as(cls, data, what)


def _decode_as(cls: type[_R], data: bytes, what: str) -> _R:
    try:
        version = _VERSION.decode(data).schema_version
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"{what}: malformed record: {exc}") from None
    major, _, _ = version.partition(".")
    if not major.isdigit():
        raise ManifestError(f"{what}: schema_version {version!r} is not MAJOR.MINOR")
    if int(major) != _READABLE_MAJOR:
        from casstore._version import __version__

        raise ManifestError(
            f"{what}: schema version {version} is not readable by casstore {__version__}, "
            f"which reads {_READABLE_MAJOR}.x"
        )
    try:
        return msgspec.json.decode(data, type=cls)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"{what}: malformed {cls.__name__}: {exc}") from None
