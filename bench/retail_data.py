"""Public retail transaction histories for the churn ranking's quality benchmark.

CDNOW (Fader and Hardie's public CD-retailer data: the 23,570 customers who first
bought in the first quarter of 1997, and every purchase they made to the end of June
1998) ships inside the ``lifetimes`` package, as does ``lifetimes``' own example
transaction log (generated, customers joining over a year). The files are read from
where the package is installed, without importing it.
"""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.bgnbd import Summary

# customer id -> every purchase's time (one per transaction row, same-day rows kept)
Transactions = dict[str, list[datetime]]


def _datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the lifetimes package (bench extra) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def cdnow() -> Transactions:
    found: Transactions = defaultdict(list)
    with (_datasets() / "CDNOW_master.txt").open() as lines:
        next(lines)  # header
        for line in lines:
            customer, day, *_ = line.split()
            found[customer].append(datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC))
    return {c: sorted(times) for c, times in found.items()}


def lifetimes_example() -> Transactions:
    found: Transactions = defaultdict(list)
    with (_datasets() / "example_transactions.csv").open() as rows:
        for row in csv.DictReader(rows):
            at = datetime.strptime(row["date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            found[row["id"]].append(at)
    return {c: sorted(times) for c, times in found.items()}


def cdnow_sample_summary() -> Summary:
    """The 2,357-customer CDNOW sample as the BG/NBD paper fits it (weeks)."""
    with (_datasets() / "cdnow_customers_summary.csv").open() as rows:
        table = list(csv.DictReader(rows))
    return Summary(
        np.array([float(r["frequency"]) for r in table]),
        np.array([float(r["recency"]) for r in table]),
        np.array([float(r["T"]) for r in table]),
    )
