"""`ebb eplb`: plans a placement from a load file; malformed input gets a clear error."""

from __future__ import annotations

import json
import subprocess

import pytest

PUBLISHED_LOAD = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]


def run(ebb_bin, tmp_path, load, *args):
    path = tmp_path / "load.json"
    path.write_text(load if isinstance(load, str) else json.dumps(load))
    return subprocess.run([str(ebb_bin), "eplb", "--load", str(path), *args], capture_output=True, text=True, timeout=60)


def test_published_example(ebb_bin, tmp_path):
    r = run(ebb_bin, tmp_path, PUBLISHED_LOAD, "--slots", "16", "--groups", "4", "--nodes", "2", "--ranks", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["physicalToLogical"] == [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                                        [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
    assert out["replicaCount"] == [[1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1], [1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1]]
    for layer, row in enumerate(out["logicalToPhysical"]):
        for expert, slots in enumerate(row):
            for s in slots:
                if s >= 0:
                    assert out["physicalToLogical"][layer][s] == expert


def test_table_shows_balancedness(ebb_bin, tmp_path):
    r = run(ebb_bin, tmp_path, PUBLISHED_LOAD, "--slots", "16", "--groups", "4", "--nodes", "2", "--ranks", "8")
    assert r.returncode == 0, r.stderr
    assert "balancedness" in r.stdout and "mean" in r.stdout


@pytest.mark.parametrize("load,args,message", [
    ([[1, 2], [3]], ["--slots", "4", "--ranks", "2"], "layer 1 has 1 experts"),
    ([[1, -2]], ["--slots", "4", "--ranks", "2"], "non-negative"),
    (PUBLISHED_LOAD, ["--slots", "15", "--ranks", "8"], "do not divide"),
    (PUBLISHED_LOAD, ["--slots", "8", "--ranks", "2"], "fewer than 12"),
    ("not json", ["--slots", "4", "--ranks", "2"], "not JSON"),
    ([], ["--slots", "4", "--ranks", "2"], "non-empty"),
    ([["a"]], ["--slots", "4", "--ranks", "2"], "non-negative number"),
])
def test_malformed_input(ebb_bin, tmp_path, load, args, message):
    r = run(ebb_bin, tmp_path, load, *args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr
