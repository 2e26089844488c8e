"""The README's quickstart, as a new user runs it: it works, and leaves the checkout as it was."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.faults import Outage
from tests.helpers import HEADER, ROOT, base_env, good_rows, start_process, write_csv


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


def cron_wrapper() -> str:
    """The README's cron wrapper script, as given there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```sh\n#!/bin/sh\n") + len("```sh\n")
    return readme[start : readme.index("```", start)]


@pytest.mark.slow
async def test_the_cron_wrapper_alerts_only_after_several_try_later_nights(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    # The README's script with only its paths changed: the profile, the password file and the
    # export here; `bulkimport` and `alert` are commands on its PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("bulkimport", f'exec {shlex.quote(sys.executable)} -m bulkimport "$@"'),
        ("alert", f"printf '%s\\n' \"$*\" >> {shlex.quote(str(tmp_path / 'alerts.txt'))}"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    password = tmp_path / "cc-password"
    password.write_text("secret\n")
    profile = tmp_path / "nightly.toml"
    settings = {
        "url": sandbox.url, "org": "demo", "user": "admin", "campaign": "1",
        "password_env": "BULKIMPORT_CC_PASSWORD", "rate": 0, "max_outage": "1s",
        "db": str(tmp_path / "nightly.db"), "log": str(tmp_path / "nightly.log"),
    }  # fmt: skip
    profile.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    profile.chmod(0o600)
    export = tmp_path / "leads.csv"
    script = tmp_path / "nightly-leads"
    script.write_text(
        cron_wrapper()
        .replace("/etc/bulkimport/nightly.toml", str(profile))
        .replace("/etc/bulkimport/cc-password", str(password))
        .replace("/data/exports/leads.csv", str(export))
    )
    env = base_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    async def night(rows: list[str]) -> int:
        write_csv(export, [HEADER, *rows])
        proc = await start_process(
            "sh", str(script), cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        # Cron mails whatever is printed: nothing, whatever the night was.
        assert (out, err) == (b"", b""), (out, err)
        assert proc.returncode is not None
        return proc.returncode

    def alerts() -> list[str]:
        path = tmp_path / "alerts.txt"
        return path.read_text().splitlines() if path.exists() else []

    assert await night(good_rows(5)) == 0
    sandbox.set_faults(Faults(outage=Outage.BAD_GATEWAY))
    tonight = good_rows(10, start=100)
    assert [await night(tonight), await night(tonight)] == [75, 75]
    assert alerts() == []
    # The third night, a new export at the same path: it goes on from the count, and alerts.
    assert await night(good_rows(12, start=100)) == 75
    assert alerts() == ["bulkimport: try later (exit 75) 3 runs in a row; see bulkimport status"]
    # The server back: the night loads, the count is over, and nothing more is said.
    sandbox.set_faults(Faults())
    assert await night(good_rows(12, start=100)) == 0
    assert len(alerts()) == 1
