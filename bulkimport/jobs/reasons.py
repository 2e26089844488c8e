"""The one line that says why a job stopped, and which setting to look at.

Built from typed facts only (an ``Outcome``'s code number, HTTP status and trouble; the code
table's ``Fix``), never from a message parsed back.
"""

from __future__ import annotations

from bulkimport.protocol import Fix, Outcome, Trouble, describe_code
from bulkimport.settings import Target


def fix_hint(fix: Fix | None, target: Target, password_env: str) -> str:
    """Which setting to check for ``fix``, with the value that was used ("" if none)."""
    who = f"--usertype {target.usertype.value} --user {target.user}"
    if fix is Fix.ORG:
        return f"--org {target.org}"
    if fix is Fix.LOGIN:
        return who
    if fix is Fix.PASSWORD:
        return f"the password in {password_env} (--pwdtype {target.pwdtype.value}) for {who}"
    if fix is Fix.CAMPAIGN:
        return f"--campaign {target.campaign}"
    if fix is Fix.PARAMETERS:
        return "that no required setting is empty (--org, --user, --campaign, the password)"
    if fix is Fix.LICENCE:
        return "the server's licence with its administrator; nothing to change here"
    if fix is Fix.FIELDS:
        return "the file's header and --map against the campaign's fields"
    return ""


def refusal(outcome: Outcome, target: Target, password_env: str) -> str:
    """One line naming what the server refused, and the setting to look at."""
    if outcome.backmsg is not None:
        hint = fix_hint(outcome.fix, target, password_env)
        return f"the server refused the job: {describe_code(outcome.backmsg)}" + (
            f"; check {hint}" if hint else ""
        )
    if outcome.status is not None and outcome.trouble is Trouble.CLIENT_ERROR:
        return (
            f"the server refused the job: HTTP {outcome.status} ({outcome.message}); "
            f"check --url {target.url} and the login"
        )
    return f"the server refused the job: {outcome.message or outcome.code}"
