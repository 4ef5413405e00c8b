"""The integration an agent runner or grader calls. Uses casstore's public API only.

A runner adds three flags and records its run in a few lines::

    add_reproducibility_args(parser)
    args = parser.parse_args()
    extra_args = apply_determinism(args, extra_args)
    with RunRecorder.from_args(args, trajectory_id=..., orchestrator_model=...,
                               orchestrator_extra_args=extra_args, ...) as recorder:
        recorder.attach_snapshot("initial", snapshot_path)
        recorder.attach_mcp_config(mcp_config)
        ...                                   # run the agent
        recorder.finish(trajectory_path)      # -> the run's manifest digest

A grader fetches what it scores, verified, with :func:`fetch_for_grading`, and records
what it scored with :func:`record_grading`; whoever reports a suite's score records how
it came from the gradings with :func:`record_suite`.
"""

from casstore import (
    MANIFEST_SUFFIX,
    RecordingWarning,
    StoreUnavailableWarning,
    record_run,
    sidecar_path,
)
from runner_hooks.args import (
    ReproducibilityArgsError,
    add_reproducibility_args,
    apply_determinism,
)
from runner_hooks.grading import GRADING_SUFFIX, GradingInputs, fetch_for_grading, record_grading
from runner_hooks.recorder import RunRecorder
from runner_hooks.suites import record_suite

__all__ = [
    "GRADING_SUFFIX",
    "MANIFEST_SUFFIX",
    "GradingInputs",
    "RecordingWarning",
    "ReproducibilityArgsError",
    "RunRecorder",
    "StoreUnavailableWarning",
    "add_reproducibility_args",
    "apply_determinism",
    "fetch_for_grading",
    "record_grading",
    "record_run",
    "record_suite",
    "sidecar_path",
]
