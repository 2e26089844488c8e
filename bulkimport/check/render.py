"""A ``CheckReport`` as text for a person: the file's format, each group of findings with its
line numbers, one summary line."""

from __future__ import annotations

from bulkimport.check.analysis import CheckReport, PhoneSource
from bulkimport.reader import limits

#: Examples per group in the text output.
TEXT_EXAMPLES = 10


def _describe_encoding(report: CheckReport) -> str:
    fmt = report.format
    source = report.encoding_source
    if source == "option":
        return f"{fmt.encoding} (given with --encoding)"
    if source == "bom":
        return f"{fmt.encoding} with a byte-order mark (certain)"
    if fmt.encoding == "utf-8" and fmt.encoding_confidence >= 1.0:
        return "utf-8, no byte-order mark (certain: it decodes as UTF-8)"
    text = f"{fmt.encoding} (detected, {fmt.encoding_confidence:.0%} sure)"
    if fmt.encoding_confidence < 0.8:
        text += "; if the names look wrong, try --encoding gb18030 (or big5, cp1252)"
    return text


def _describe_delimiter(report: CheckReport) -> str:
    fmt = report.format
    shown = "tab" if fmt.delimiter == "\t" else repr(fmt.delimiter)
    how = "given with --delimiter" if report.delimiter_given else "sniffed"
    return (
        f"{shown} ({how}; {report.fitting:,} of {report.records:,} records have the header's "
        f"{len(fmt.header)} cells)"
    )


def _describe_sheet(report: CheckReport) -> str:
    facts = report.sheet
    assert facts is not None
    info = next((info for info in facts.sheets if info.name == facts.sheet), None)
    number = f"sheet {info.number} of {len(facts.sheets)}" if info is not None else "a sheet"
    how = (
        "given with --sheet" if report.sheet_given else "the first visible; --sheet chooses another"
    )
    return f"{limits.shown(facts.sheet or '')} ({number}, {how})"


def _describe_phone(report: CheckReport) -> str:
    phone = report.phone
    if phone.source is PhoneSource.OPTION:
        return f"{phone.name} (given with --phone-field)"
    if phone.source is PhoneSource.SCHEMA and report.campaign is not None:
        return f"{phone.name} (the phone field campaign {report.campaign.id} requires)"
    if phone.source is PhoneSource.NAME:
        return f"{phone.name} (found by its name; --phone-field chooses another)"
    return "none (no phone checks; give --phone-field)"


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

        first, last = fmt.data_line, report.last_line
        span = f"{fmt.unit}s {first:,}-{last:,}" if report.records else "no records"
        out.append(report.path)
        if report.sheet is not None:
            item("sheet", _describe_sheet(report))
        else:
            item("encoding", _describe_encoding(report))
            item("delimiter", _describe_delimiter(report))
        readable = report.records - report.invalid
        item(
            "records",
            f"{report.records:,} ({span}): {readable:,} readable, {report.invalid:,} invalid",
        )
        if report.campaign is not None:
            item("campaign", f"{report.campaign.id} ({report.campaign.name})")
        item("phone", _describe_phone(report))
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
        more = group.count - len(shown)
        if more:
            out.append(f"  ... and {more:,} more (--all lists every one)")
        out.append("")
    if report.clean:
        out.append(f"No problems in {report.records:,} records; nothing was sent.")
    else:
        groups = sum(1 for group in report.groups if group.problem)
        out.append(
            f"Found {report.problems:,} problem{'s' if report.problems != 1 else ''} in "
            f"{groups} group{'s' if groups != 1 else ''} ({report.records:,} records); "
            "nothing was sent."
        )
    return "\n".join(out)
