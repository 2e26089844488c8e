"""Generate a realistic lead file of N rows, so that nothing large is ever committed.

    python bench/generate.py --rows 1000000 [-o bench/data/leads-1000000.csv] [--seed 1]

The columns are those of ``samples/leads.csv`` (name, phone1, phone2, email, company, city,
address, priority, memo): Chinese and Western names, Chinese cities and street addresses,
mobile numbers (``phone1`` unique per row, so a server never sees a duplicate), some empty
cells, some quoted values holding commas, memos in Chinese or English. About 125 bytes per
row, UTF-8 without BOM, CRLF line ends (csv.writer's default, as Excel writes them).

The same ``--rows`` and ``--seed`` always give the same bytes, so a file generated once in
``bench/data/`` (gitignored) is reused by ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

HEADER = ("name", "phone1", "phone2", "email", "company", "city", "address", "priority", "memo")

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宁宇浩然晨曦雪梅海燕"
)


def _words(text: str) -> list[str]:
    return text.split()


_FIRST = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Sophie "
    "Thomas Emma Lucas Chloe Wei Mei Kevin Grace Daniel Olivia Pierre Marie Hans Anna"
)
_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Martin Bernard Dubois Wang Chen "
    "Lee Tan Wong Schmidt Muller Rossi Silva Kim Park Nguyen Lopez Wilson Taylor"
)
_CITIES = {
    "北京": ("海淀区中关村大街", "朝阳区建国路", "东城区王府井大街", "西城区金融街"),
    "上海": ("浦东新区世纪大道", "徐汇区漕溪北路", "静安区南京西路", "黄浦区淮海中路"),
    "深圳": ("福田区深南大道", "南山区科技园路", "罗湖区人民南路", "宝安区新安路"),
    "广州": ("天河区天河路", "越秀区中山五路", "海珠区新港西路", "番禺区市桥路"),
    "杭州": ("西湖区文三路", "滨江区江南大道", "上城区解放路", "拱墅区莫干山路"),
    "成都": ("武侯区人民南路", "锦江区春熙路", "高新区天府大道", "青羊区东城根街"),
    "武汉": ("江汉区解放大道", "武昌区中南路", "洪山区珞喻路", "汉阳区汉阳大道"),
    "南京": ("鼓楼区中山北路", "玄武区珠江路", "秦淮区中华路", "建邺区江东中路"),
}
_CITY_NAMES = tuple(_CITIES)
_COMPANIES = (
    "Acme Trading Co.",
    "Smith & Sons",
    "Globex, Inc.",  # a comma: the writer quotes it
    "深圳市华强电子有限公司",
    "上海浦江贸易有限公司",
    "北京中科信息技术有限公司",
    "Initech Ltd",
    "杭州西湖茶业有限公司",
    "Wong, Lee & Partners",
    "成都天府软件园",
)
_MEMOS = (
    "意向客户",
    "call after 6pm",
    "已发报价单，等待回复",
    "VIP, handle with care",
    "客户要求周末联系",
    "interested in the premium plan",
    "老客户转介绍",
    "需要发票；月底付款",
    'said "call me next week"',
    "对价格敏感",
)
_MOBILE_PREFIXES = _words(
    "130 131 132 133 135 136 137 138 139 150 151 152 155 156 157 158 159 "
    "166 176 177 180 181 182 185 186 187 188 189 198 199"
)
_DOMAINS = ("example.com", "example.cn", "mail.example.org", "qq.example.com")


def rows(count: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """The ``count`` data rows of the file (tuples of nine strings)."""
    rng = random.Random(seed)
    rand = rng.random
    choice = rng.choice
    randrange = rng.randrange
    prefixes = _MOBILE_PREFIXES
    step = 99_999_989  # prime: phone1 numbers are distinct for up to ~100 M rows
    for i in range(count):
        if rand() < 0.6:
            name = choice(_SURNAMES) + choice(_GIVEN) + (choice(_GIVEN) if rand() < 0.6 else "")
        else:
            name = f"{choice(_FIRST)} {choice(_LAST)}"
        phone1 = f"{prefixes[i % len(prefixes)]}{(i * step) % 100_000_000:08d}"
        phone2 = f"{choice(prefixes)}{randrange(100_000_000):08d}" if rand() < 0.3 else ""
        email = f"lead{i}@{choice(_DOMAINS)}" if rand() < 0.7 else ""
        company = choice(_COMPANIES) if rand() < 0.5 else ""
        city = choice(_CITY_NAMES)
        address = f"{choice(_CITIES[city])}{randrange(1, 400)}号"
        if rand() < 0.2:
            address += f"，{randrange(1, 30)}楼{randrange(1, 20):02d}室"
        priority = str(randrange(1, 10))
        memo = choice(_MEMOS) if rand() < 0.5 else ""
        yield (name, phone1, phone2, email, company, city, address, priority, memo)


def generate(path: Path, count: int, seed: int = 1) -> Path:
    """Write a file of ``count`` rows (plus the header) to ``path``; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows(count, seed))
    partial.replace(path)
    return path


def data_file(count: int, seed: int = 1, directory: Path | None = None) -> Path:
    """``bench/data/leads-<count>.csv``, generated unless it is already there."""
    directory = directory or Path(__file__).resolve().parent / "data"
    suffix = "" if seed == 1 else f"-s{seed}"
    path = directory / f"leads-{count}{suffix}.csv"
    if not path.exists():
        generate(path, count, seed)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    path = args.output or (Path(__file__).resolve().parent / "data" / f"leads-{args.rows}.csv")
    generate(path, args.rows, args.seed)
    size = path.stat().st_size
    print(
        f"{path}: {args.rows:,} rows, {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
