"""A ``CheckReport`` as text for a person: the file's format, each group of findings with its
line numbers, one summary line. The layout is made here; every sentence in it is
``render``'s."""

from __future__ import annotations

from bulkimport.check import render
from bulkimport.check.report import CheckReport
from bulkimport.reader import limits

#: Examples per group in the text output.
TEXT_EXAMPLES = 10


def render_text(
    report: CheckReport, *, examples: int | None = TEXT_EXAMPLES, quiet: bool = False
) -> str:
    """The report for a person: the file's format, then each group with its line numbers,
    then one summary line. ``examples`` per group (``None``: every one collected)."""
    out: list[str] = []
    fmt = report.format
    if not quiet:

        def item(label: str, text: str) -> None:
            out.append(f"  {label:<10} {text}")

        out.append(report.path)
        if report.sheet is not None:
            item("sheet", render.sheet(report.sheet, report.sheet_given))
        else:
            item("encoding", render.encoding(fmt, report.encoding_source))
            item(
                "delimiter",
                render.delimiter(fmt, report.delimiter_given, report.fitting, report.records),
            )
        item("records", render.records(fmt, report.records, report.invalid, report.last_line))
        if report.campaign is not None:
            item("campaign", f"{report.campaign.id} ({report.campaign.name})")
        item("phone", render.phone(report.phone, report.campaign))
        columns = [limits.clip(column) for column in fmt.header]
        width = max(len(column) for column in columns)
        label = "columns"
        for column, name in zip(columns, fmt.fields, strict=True):
            item(
                label,
                f"{column:<{width}} -> {limits.clip(name) if name is not None else '(dropped)'}",
            )
            label = ""
        for name, value in fmt.constants:
            item(label, f"{name} = {limits.shown(value)} (--set)")
        label = "samples"
        for line, record in report.samples:
            item(label, f"{fmt.unit} {line}: {record}")
            label = ""
        for note in report.notes:
            item("note", note)
        out.append("")
    for group in report.groups:
        out.append(f"{group.code}: {group.title} ({group.count:,})")
        shown = group.examples if examples is None else group.examples[:examples]
        for finding in shown:
            where = f"{fmt.unit} {finding.line}" if finding.line is not None else "file"
            out.append(f"  {where}: {finding.message}")
        left = group.count - len(shown)
        if left:
            out.append(f"  {render.more(left)}")
        out.append("")
    groups = sum(1 for group in report.groups if group.problem)
    out.append(render.summary(report.records, report.problems, groups))
    return "\n".join(out)
