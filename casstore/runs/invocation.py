"""How a runner was started, recorded so a replay can start it again as it was.

An invocation keeps the program (``python -m runner.main``, or a script), the
folder it ran in (relative to its code's checkout) and its arguments, with:
the arguments that are input files the manifest holds, by role (a replay
writes that input and passes its path); secrets redacted, and URLs of the
recording machine's services, as named placeholders to supply.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from casstore.format.manifest import Invocation
from casstore.runs.redaction import MARKER, Redactor
from casstore.runs.secrets import is_secret_key

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
#: The role of an argument that names where the run writes its trajectory.
OUTPUT = "trajectory"


def program_of(argv: Sequence[str]) -> int:
    """How many leading words of ``argv`` start the program (the rest are its arguments):
    through ``-m module``, else through the first script (``*.py``), else one."""
    for index, word in enumerate(argv):
        if word == "-m" and index + 1 < len(argv):
            return index + 2
    for index, word in enumerate(argv):
        if word.endswith(".py"):
            return index + 1
    return 1


def current_argv() -> list[str]:
    """This process's command line as it was typed (``python -m runner.main ...``)."""
    original = list(getattr(sys, "orig_argv", []) or [])
    if original and "-c" not in original[:2]:
        return original
    return [sys.executable, *sys.argv]


def _placeholder(flag: str | None, index: int) -> str:
    if flag:
        return re.sub(r"[^A-Z0-9]+", "_", flag.lstrip("-").upper()).strip("_")
    return f"ARG{index}"


def capture(
    argv: Sequence[str],
    *,
    inputs: Mapping[str, str],
    code_root: Path | None,
    redactor: Redactor,
    cwd: Path | None = None,
) -> Invocation:
    """The invocation of ``argv`` (program and arguments): ``inputs`` maps the real paths
    of recorded input files to their roles."""
    cwd = cwd or Path.cwd()
    split = program_of(argv)
    program = ["python" if Path(word).name.startswith("python") else word for word in argv[:split]]
    where = _relative(cwd, code_root)
    if program[-1].endswith(".py"):
        script = Path(cwd, program[-1])
        in_root = _relative(script, code_root)
        if in_root is None:
            program[-1] = str(script.absolute())
        elif where is not None:
            # A replay starts in the same folder of its own checkout: the script from there.
            program[-1] = os.path.relpath(os.path.realpath(script), os.path.realpath(cwd))
        else:
            program[-1] = in_root  # relative to the checkout (cwd is empty)
    args = redactor.redact(list(argv[split:]), "invocation")
    files: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    for index, arg in enumerate(args):
        flag = args[index - 1] if index and args[index - 1].startswith("-") else None
        name, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if eq:
            flag = name
        path = Path(cwd, value)
        role = inputs.get(os.path.realpath(path)) if value and os.path.exists(path) else None
        if role is not None:
            files[str(index)] = role
            continue
        is_value = bool(eq) or not arg.startswith("-")
        secret = flag is not None and is_secret_key(flag.lstrip("-"))
        if is_value and (MARKER in value or _URL.fullmatch(value) or secret):
            placeholders[str(index)] = _placeholder(flag, index)
    return Invocation(
        program=program,
        cwd=where or "",
        args=args,
        files=files,
        placeholders=placeholders,
    )


def _relative(path: Path, root: Path | None) -> str | None:
    if root is None:
        return None
    try:
        relative = Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return None
    return relative.as_posix()


def command(
    invocation: Invocation,
    paths: Mapping[str, str],
    code_root: str | None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """The shell command that starts the runner again: recorded input files replaced by
    ``paths`` (role -> path), placeholders as ``"${NAME}"`` to set before running, and
    the recorded ``environment`` settings before the program (a redacted one as
    ``NAME="${NAME}"``, to supply)."""
    words = [
        f'{name}="${{{name}}}"' if MARKER in value else f"{name}={shlex.quote(value)}"
        for name, value in sorted((environment or {}).items())
    ]
    words += [shlex.quote(word) for word in invocation.program]
    script = invocation.program[-1] if invocation.program else ""
    if script.endswith(".py") and not os.path.isabs(script) and not invocation.cwd:
        # Started from outside its checkout: the script is named from the checkout's root.
        root = shlex.quote(code_root) if code_root is not None else '"${CODE_ROOT}"'
        words[-1] = f"{root}/{shlex.quote(script)}"
    for index, arg in enumerate(invocation.args):
        key = str(index)
        prefix = arg.partition("=")[0] + "=" if arg.startswith("-") and "=" in arg else ""
        if key in invocation.files and invocation.files[key] in paths:
            words.append(shlex.quote(prefix + paths[invocation.files[key]]))
        elif key in invocation.placeholders:
            quoted = shlex.quote(prefix) if prefix else ""
            words.append(quoted + f'"${{{invocation.placeholders[key]}}}"')
        else:
            words.append(shlex.quote(arg))
    line = " ".join(words)
    if invocation.cwd:
        root = code_root if code_root is not None else "${CODE_ROOT}"
        folder = f"{root}/{invocation.cwd}" if invocation.cwd != "." else root
        quoted = shlex.quote(folder) if code_root is not None else f'"{folder}"'
        line = f"cd {quoted} && {line}"
    return line
