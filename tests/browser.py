"""A real browser for the HTML report: Debian's ``chromium``, headless, with every network
request made to fail, so a page that needed one would log an error."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def install_chromium() -> str:
    """Debian's chromium package, installed where missing (never a downloaded build)."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for command in (
        [*sudo, "apt-get", "install", "-y", "-q", "chromium"],
        [*sudo, "apt-get", "update", "-q"],
        [*sudo, "apt-get", "install", "-y", "-q", "chromium"],
    ):
        subprocess.run(command, capture_output=True, timeout=900)
        found = shutil.which("chromium")
        if found:
            return found
    raise RuntimeError("cannot install Debian's chromium package (apt-get install chromium)")


def render(chromium: str, page: Path, screenshot: Path, width: int) -> tuple[Path, list[str]]:
    """Load ``page`` at ``width`` pixels, take a screenshot; returns it and the console
    errors and failed loads the browser logged."""
    profile = screenshot.with_suffix(".profile")
    done = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # Any request leaves the machine through a resolver that finds nothing.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},1600",
            "--hide-scrollbars",
            f"--screenshot={screenshot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert screenshot.exists(), done.stderr[-2000:]
    errors = [
        line
        for line in done.stderr.splitlines()
        if ("CONSOLE" in line and ("ERROR" in line or "Uncaught" in line))
        or "Failed to load resource" in line
        or "net::ERR_" in line
    ]
    return screenshot, errors


def distinct_colours(path: Path) -> int:
    """How many distinct colours a screenshot holds: one means a blank page."""
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20
