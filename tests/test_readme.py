"""The README's quickstart, as a new user runs it: it works, and leaves the checkout as it was."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

from tests.helpers import ROOT, base_env, start_process


def quickstart() -> str:
    """The command of the quickstart that loads the sample (after the setup)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [line] = [line for line in readme.splitlines() if "bulkimport run samples/leads.csv" in line]
    return line.split("&& ", 2)[-1].strip()


async def test_the_quickstart_leaves_the_checkout_clean(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "samples").symlink_to(ROOT / "samples")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = quickstart().replace(
        ".venv/bin/bulkimport", f"{shlex.quote(sys.executable)} -m bulkimport"
    )
    proc = await start_process(
        "sh", "-c", command, cwd=checkout, env=base_env(TMPDIR=str(temporary)),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    # The sample holds bad rows on purpose: exit 1, and the report's path is printed.
    assert proc.returncode == 1, err.decode()
    report = temporary / "bulkimport-quickstart-job-1-failed.csv"
    assert str(report) in err.decode()
    assert os.listdir(checkout) == ["samples"]
    assert "bulkimport-quickstart.db" in os.listdir(temporary)
