import json
import re

import pytest

from .conftest import run_nas
from .synthetic import write_npz, write_space


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    space = write_space(tmp / "small.py")
    data = write_npz(tmp / "d.npz")
    r = run_nas("search", space, "--budget", "6k", "--trials", "3", "--proxy-epochs", "1", "--batch-size", "64",
                "--data", data, "--out", tmp / "run", "--strategy", "random")
    assert r.returncode == 0, r.stderr
    r = run_nas("retrain", tmp / "run" / "winner.json", "--epochs", "2", "--batch-size", "64")
    assert r.returncode == 0, r.stderr
    return tmp / "run"


def test_report_of_a_search_and_its_retrain(runs):
    r = run_nas("report", runs, "--pdf")
    assert r.returncode == 0, r.stderr
    md = (runs / "report.md").read_text()
    for section in ("## Space and budget", "## Search", "## Winner", "## Retrain", "## Reproduce"):
        assert section in md
    trials = [json.loads(l) for l in (runs / "trials.jsonl").read_text().splitlines()]
    winner = json.loads((runs / "winner.json").read_text())
    result = json.loads((runs / "retrain" / "result.json").read_text())
    assert "128 candidates" in md and "fit the budget (counted exactly)" in md and "pruned" in md
    candidates = len({json.dumps(t["candidate"], sort_keys=True) for t in trials})
    assert f"{candidates} candidates" in md and "Strategy **random**" in md and "jobs per rung" in md
    assert f"{winner['params']:,} trainable parameters" in md
    assert f"{100 * result['final_test_acc']:.2f}%" in md and f"{100 * result['final_test_acc_tta']:.2f}%" in md
    assert "nas search" in md and "--strategy random" in md and "nas retrain" in md
    for image in re.findall(r"\]\((report/[^)]+\.png)\)", md):
        assert (runs / image).stat().st_size > 1000
    assert {"report/tradeoff_params.png", "report/tradeoff_macs.png", "report/best_so_far.png",
            "report/architecture.png", "report/loss.png", "report/error.png"} <= set(re.findall(r"\]\(([^)]+)\)", md))
    html = (runs / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and 'src="report/' not in html  # self-contained
    assert "<h2>Retrain</h2>" in html
    pdf = (runs / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_report_of_a_retrain_directory_alone(runs, tmp_path):
    r = run_nas("report", runs / "retrain", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report.md").read_text()
    assert "## Retrain" in md and "## Winner" in md and "## Search" not in md


def test_report_of_something_else_is_one_line(tmp_path):
    r = run_nas("report", tmp_path)
    assert r.returncode == 2 and "holds neither a search" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_show_prints_every_layer_with_totals(runs):
    r = run_nas("show", runs / "winner.json")
    assert r.returncode == 0, r.stderr
    winner = json.loads((runs / "winner.json").read_text())
    assert f"{winner['params']:,} trainable parameters, {winner['macs']:,} MACs per image" in r.stdout
    assert "fits" in r.stdout and "stem" in r.stdout and "head" in r.stdout and "Conv2d" in r.stdout
    r = run_nas("show", runs / "winner.json", "--budget", "1000")
    assert r.returncode == 0 and "OVER BUDGET" in r.stdout


def test_pareto_front():
    from nas.report.plots import pareto_front
    points = [(1, 0.5), (2, 0.4), (2, 0.7), (3, 0.6), (4, 0.9)]
    assert pareto_front(points) == [(1, 0.5), (2, 0.7), (4, 0.9)]


def test_a_winner_at_an_edge_of_the_space_is_named_by_the_search_and_its_report(tmp_path):
    from nas.spaces import load_space
    from nas.spaces.space import edges_note

    space = tmp_path / "ranges.py"
    space.write_text(SMALL_SPACE_WITH_RANGES)
    data = write_npz(tmp_path / "d.npz")
    r = run_nas("search", space, "--budget", "6k", "--trials", "1", "--proxy-epochs", "1", "--batch-size", "64",
                "--min-share", "0", "--data", data, "--out", tmp_path / "run", "--strategy", "grid")
    assert r.returncode == 0, r.stderr
    winner = json.loads((tmp_path / "run" / "winner.json").read_text())
    note = edges_note(load_space(space), winner["candidate"])
    assert note and "stem=16 (highest of 8, 12, 16)" in note  # grid's first candidate: the widest stem
    assert note in " ".join(r.stdout.split())
    assert run_nas("report", tmp_path / "run").returncode == 0
    assert note in (tmp_path / "run" / "report.md").read_text()


SMALL_SPACE_WITH_RANGES = '''
from nas.spaces import Space, Stage, Stem, choice
space = Space(name="ranges", stem=Stem(width=choice("stem", [8, 12, 16])),
              stages=[Stage("conv", width=choice("w1", [8, 16]), kernel=3)], num_classes=4)
'''
