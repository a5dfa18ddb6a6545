import re

import pytest


def test_dry_run_reports_the_space_and_what_fits(nas_cli):
    r = nas_cli("search", "spaces/tiny.py", "--budget", "50000", "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1,632,586,752 candidates" in out
    assert re.search(r"fit the budget about [\d,]+ \+/- [\d,]+", out)
    assert "smallest" in out and "largest" in out and "sample 1" in out


def test_dry_run_counts_exactly_when_the_space_is_small(nas_cli, tmp_path):
    space = tmp_path / "small.py"
    space.write_text(
        "from nas.spaces import Space, Stem, Stage, choice\n"
        "space = Space('small', Stem(choice('s', [8, 16])), [Stage('conv', choice('w', [8, 16, 32]))])\n")
    # params: stem 3*s*9+2s, conv s*w*9+2w, fc w*10+10; s=8,w=8: 232+592+90=914
    r = nas_cli("search", space, "--budget", "2000", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "counted exactly" in r.stdout
    from nas.budget import Budget, estimate
    from nas.spaces import load_space
    sp = load_space(space)
    fit = sum(Budget(2000).fits(estimate(sp.resolve(c))) for c in sp.enumerate())
    assert f"fit the budget {fit:,} of 6" in r.stdout
    assert "914" in r.stdout


def _one_line_error(r, *words):
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_space_file(nas_cli):
    _one_line_error(nas_cli("search", "spaces/nope.py", "--budget", "50k", "--dry-run"), "not found", "nope.py")


def test_space_file_that_raises(nas_cli, tmp_path):
    f = tmp_path / "broken.py"
    f.write_text("raise RuntimeError('boom')\n")
    _one_line_error(nas_cli("search", f, "--budget", "50k", "--dry-run"), "broken.py", "boom")


def test_space_file_with_a_syntax_error(nas_cli, tmp_path):
    f = tmp_path / "syntax.py"
    f.write_text("space = (\n")
    _one_line_error(nas_cli("search", f, "--budget", "50k", "--dry-run"), "syntax.py", "SyntaxError")


def test_space_file_without_a_space(nas_cli, tmp_path):
    f = tmp_path / "empty.py"
    f.write_text("x = 1\n")
    _one_line_error(nas_cli("search", f, "--budget", "50k", "--dry-run"), "defines no")


@pytest.mark.parametrize("budget", ["5Q", "fifty", "-3", "budgets/missing.toml"])
def test_unknown_budget_format(nas_cli, budget):
    _one_line_error(nas_cli("search", "spaces/tiny.py", "--budget", budget, "--dry-run"), budget)


def test_no_budget_given(nas_cli):
    _one_line_error(nas_cli("search", "spaces/tiny.py", "--dry-run"), "budget")


def test_budget_nothing_fits(nas_cli):
    _one_line_error(nas_cli("search", "spaces/tiny.py", "--budget", "100", "--dry-run"), "no candidate", "fits")


def test_unknown_flag_is_one_line(nas_cli):
    _one_line_error(nas_cli("search", "spaces/tiny.py", "--budgett", "5"), "unrecognized")
