"""Realistic generated customers (Chinese companies, addresses, lines) for search benchmarks."""

from __future__ import annotations

import csv
import random
from pathlib import Path

CITIES = {"杭州市": ["西湖区", "上城区", "拱墅区", "滨江区", "萧山区", "余杭区"],
          "宁波市": ["海曙区", "江北区", "北仑区", "鄞州区"], "绍兴市": ["越城区", "柯桥区", "上虞区"],
          "温州市": ["鹿城区", "龙湾区", "瓯海区"], "嘉兴市": ["南湖区", "秀洲区"], "湖州市": ["吴兴区", "南浔区"]}
PLACES = "东西南北中新华兴长青江海金银宝龙凤安平和顺富康泰盛德明光远大正通达永昌利丰荣"
TRADES = ["机械", "纺织", "电子", "化工", "物流", "食品", "建材", "印染", "五金", "塑料", "汽配",
          "服装", "包装", "医药", "家具", "电器", "钢结构", "水泥", "造纸", "陶瓷"]
KINDS = ["有限公司", "股份有限公司", "厂", "制造有限公司", "科技有限公司", "实业有限公司"]
ROADS = ["路", "街", "大道", "巷"]
VOLTAGES = ["10kV", "10kV", "10kV", "35kV", "0.4kV", "110kV", "20kV"]
CAPACITIES = [50, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500]
HEADER = ["户号", "户名", "表计局号", "合同容量", "用电地址", "线路名称", "供电电压等级"]


def customers(count: int, seed: int = 7):
    """`count` customer records with unique account numbers, reproducible for a seed."""
    rng = random.Random(seed)
    cities = list(CITIES)
    accounts = rng.sample(range(10 ** 9), count)
    for account in accounts:
        city = rng.choice(cities)
        district = rng.choice(CITIES[city])
        brand = "".join(rng.choice(PLACES) for _ in range(2))
        road = "".join(rng.choice(PLACES) for _ in range(2)) + rng.choice(ROADS)
        yield {
            "account_no": f"3{account:09d}",
            "name": f"{city[:2]}{brand}{rng.choice(TRADES)}{rng.choice(KINDS)}",
            "meter_no": f"51{rng.randrange(10 ** 11):011d}",
            "capacity_kva": rng.choice(CAPACITIES),
            "address": f"{city}{district}{road}{rng.randrange(1, 999)}号",
            "line": "".join(rng.choice(PLACES) for _ in range(2)) + "线",
            "voltage": rng.choice(VOLTAGES),
        }


def write_csv(path: Path, count: int, seed: int = 7) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for r in customers(count, seed):
            writer.writerow([r["account_no"], r["name"], r["meter_no"], r["capacity_kva"],
                             r["address"], r["line"], r["voltage"]])
    return path
