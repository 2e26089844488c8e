"""Write samples/leads.csv (UTF-8), samples/leads-gbk.csv (GB18030) and
samples/leads-excel.csv (UTF-8 with BOM, CRLF), reproducibly.

    python samples/make_samples.py

The UTF-8 file holds, on purpose, rows the sandbox answers as duplicates, rows it rejects
(no phone1), rows the reader marks invalid (ragged, ``||`` in a value) and a blank line (a
line, not a record); the script prints their line numbers.

The Excel file holds what Excel and people do to a lead list, as ``check`` reports it:
spaces around values (trimmed), phone numbers ending in ``.0`` or starting with ``'``
(repaired), one in scientific notation (its digits lost: not sent), a quote that is never
closed (that line is not sent, the next ones are), a value over two lines, and Excel's empty
rows of bare delimiters (counted, not records).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

HEADER = ["name", "phone1", "phone2", "email", "company", "city", "address", "priority", "memo"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明"]
LATIN = ["Anna Schmidt", "John Smith", "María García", "Luca Rossi", "Sophie Martin", "Tom Lee"]
CITIES = {
    "北京": ["朝阳区建国路{n}号", "海淀区中关村大街{n}号"],
    "上海": ["浦东新区世纪大道{n}号", "徐汇区漕溪北路{n}号"],
    "广州": ["天河区体育西路{n}号", "越秀区中山五路{n}号"],
    "深圳": ["南山区科技园南路{n}号", "福田区深南大道{n}号"],
    "杭州": ["西湖区文三路{n}号", "滨江区江南大道{n}号"],
}
COMPANIES = ["华为技术有限公司", "Acme Trading Co.", "阿里巴巴", "Smith & Sons", "腾讯科技", ""]
MEMOS = ["", "", "回访", "call after 6pm", "意向客户", "VIP", "已发报价"]


def phone(rng: random.Random) -> str:
    return (
        rng.choice(["13", "15", "18"]) + str(rng.randint(0, 9)) + f"{rng.randint(0, 99999999):08d}"
    )


def lead(rng: random.Random, index: int) -> list[str]:
    name = rng.choice(LATIN) if index % 4 == 0 else rng.choice(SURNAMES) + rng.choice(GIVEN)
    city = rng.choice(list(CITIES))
    street = rng.choice(CITIES[city]).format(n=rng.randint(1, 300))
    # Some addresses carry a comma, so the writer quotes them.
    address = f"{street}, {rng.randint(1, 30)}楼" if rng.random() < 0.3 else street
    email = f"lead{index}@example.com" if rng.random() < 0.6 else ""
    return [
        name,
        phone(rng),
        phone(rng) if rng.random() < 0.3 else "",
        email,
        rng.choice(COMPANIES),
        city,
        address,
        str(rng.randint(1, 9)),
        rng.choice(MEMOS),
    ]


def csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def make_leads(rng: random.Random, count: int) -> tuple[str, dict[str, list[int]]]:
    rows = [lead(rng, index) for index in range(count)]
    rows[30][8] = "客户要求下午联系\n周末不要打电话"
    rows[50][8] = "discount=10%"
    rows[55][8] = "ref=A&B, see contract"
    for target, source in ((42, 5), (151, 60), (262, 200)):
        rows[target][1] = rows[source][1]  # the sandbox answers duplicate
    for target in (70, 181, 290):
        rows[target][1] = ""  # the sandbox rejects: missing required field
    rows[120][8] = "VIP||urgent"  # cannot be encoded: invalid locally
    ragged = {100: rows[100][:7], 222: [*rows[222], "extra"]}
    text = csv_line(HEADER)
    line = 2
    notes: dict[str, list[int]] = {"duplicate": [], "no phone1": [], "ragged": []}
    notes.update({"||": [], "blank line": [], "line break": []})
    for index, cells in enumerate(rows):
        if index == 160:
            text += "\n"
            notes["blank line"].append(line)
            line += 1
        if index in (42, 151, 262):
            notes["duplicate"].append(line)
        if index in (70, 181, 290):
            notes["no phone1"].append(line)
        if index == 120:
            notes["||"].append(line)
        if index == 30:
            notes["line break"].append(line)
        if index in ragged:
            notes["ragged"].append(line)
            cells = ragged[index]
        row_text = csv_line(cells)
        text += row_text
        line += row_text.count("\n")
    return text, notes


def make_excel_edges(rng: random.Random, count: int) -> tuple[str, dict[str, list[int]]]:
    rows = [csv_line(lead(rng, index)).rstrip("\n") for index in range(count)]
    notes: dict[str, list[int]] = {}
    # (row index, text of the line, what check reports); row indexes count from line 2.
    edges = [
        (2, "王芳, 13912000099 ,,,\u00a0Acme Trading Co.\u3000,北京,朝阳区建国路8号,3,", "spaces"),
        (4, "李娜,13800138001.0,,,,上海,徐汇区漕溪北路2号,1,", "repaired .0"),
        (5, "张伟,'13800138002,,,,广州,天河区体育西路3号,2,", "repaired '"),
        (7, "刘洋,1.38E+10,,,,深圳,福田区深南大道4号,5,", "digits lost"),
        (9, ",,,,,,,,", "blank"),
        (11, '陈静,13800138003,,,,杭州,"西湖区文三路5号,4,VIP', "unclosed quote"),
        (13, '周敏,13800138004,,,,北京,海淀区中关村大街6号,2,"回访\n周末不要打电话"', "two lines"),
    ]
    for index, text, _ in edges:
        rows[index] = text
    line = 2
    for index, text in enumerate(rows):
        for edge_index, _, what in edges:
            if edge_index == index:
                notes.setdefault(what, []).append(line)
        line += text.count("\n") + 1
    notes["blank"] += [line, line + 1]
    text = "\r\n".join([",".join(HEADER), *rows, ",,,,,,,,", ",,,,,,,,"]) + "\r\n"
    return text, notes


def main() -> None:
    here = Path(__file__).resolve().parent
    text, notes = make_leads(random.Random(20240607), 300)
    (here / "leads.csv").write_bytes(text.encode("utf-8"))
    rng = random.Random(8)
    chinese = csv_line(HEADER)
    for index in range(50):
        cells = lead(rng, index * 4 + 1)  # never a Latin name
        cells[4] = rng.choice(["华为技术有限公司", "阿里巴巴", "腾讯科技", "小米科技", ""])
        cells[8] = rng.choice(["", "回访", "意向客户", "已发报价", "老客户介绍"])
        chinese += csv_line(cells)
    (here / "leads-gbk.csv").write_bytes(chinese.encode("gb18030"))
    for what, lines in notes.items():
        print(f"{what}: lines {lines}")
    excel, edges = make_excel_edges(random.Random(3), 16)
    (here / "leads-excel.csv").write_bytes(excel.encode("utf-8-sig"))
    for what, lines in edges.items():
        print(f"leads-excel.csv, {what}: lines {lines}")


if __name__ == "__main__":
    main()
