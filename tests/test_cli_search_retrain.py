import json

from .synthetic import write_npz, write_space


def test_search_then_retrain_through_the_command_line(nas_cli, tmp_path):
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz")
    out = tmp_path / "run"
    r = nas_cli("search", space, "--budget", "6k", "--trials", "2", "--proxy-epochs", "1", "--batch-size", "64",
                "--data", data, "--out", out, "--strategy", "random")
    assert r.returncode == 0, r.stderr
    assert "trial 2 rung 0" in r.stdout and "winner:" in r.stdout  # plain progress lines off a terminal
    assert "fit the budget" in r.stdout and "of the space (counted exactly); " in r.stdout  # before the first trial
    assert len((out / "trials.jsonl").read_text().splitlines()) == 2
    r = nas_cli("retrain", out / "winner.json", "--epochs", "1", "--batch-size", "64",
                "--weight-decay", "5e-5", "--label-smoothing", "0", "--translate", "3", "--cutout", "0", "--lookahead", "0.95",
                "--tta-shift", "1", "--flip", "alternate")
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stdout and "test accuracy: final" in r.stdout
    result = json.loads((out / "retrain" / "result.json").read_text())
    assert result["epochs"] == 1 and (out / "retrain" / "model.py").exists()
    recipe = result["recipe"]  # the regularisation flags reach the recipe, and the rest keeps its defaults
    assert (recipe["weight_decay"], recipe["label_smoothing"], recipe["augment"]) == \
        (5e-5, 0, {"flip": True, "alternate": True, "translate": 3, "cutout": 0}) and recipe["lr"] == 0.2
    assert (recipe["lookahead"], recipe["tta_shift"]) == (0.95, 1)
    r = nas_cli("retrain", out / "winner.json", "--recipe", "airbench", "--epochs", "1", "--batch-size", "64",
                "--out", out / "airbench")
    assert r.returncode == 0, r.stderr
    recipe = json.loads((out / "airbench" / "result.json").read_text())["recipe"]  # airbench's, but for the flags
    assert (recipe["momentum"], recipe["decay"], recipe["norm_bias_lr"], recipe["freeze_norm_weight"]) == \
        (0.85, "linear", 64.0, True) and (recipe["batch_size"], recipe["epochs"]) == (64, 1)


def test_unknown_strategy(nas_cli, tmp_path):
    r = nas_cli("search", "spaces/tiny.py", "--budget", "50k", "--strategy", "magic", "--data", tmp_path / "x.npz")
    assert r.returncode == 2 and "unknown strategy 'magic'" in r.stderr and "Traceback" not in r.stderr


def test_retrain_a_runner_up_by_its_trial_number(nas_cli, tmp_path):
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz")
    out = tmp_path / "run"
    r = nas_cli("search", space, "--budget", "6k", "--trials", "2", "--rungs", "1", "--proxy-epochs", "1",
                "--batch-size", "64", "--data", data, "--out", out, "--strategy", "random")
    assert r.returncode == 0, r.stderr
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    winner = json.loads((out / "winner.json").read_text())
    other = next(t for t in trials if t["candidate"] != winner["candidate"])
    r = nas_cli("retrain", out / "winner.json", "--trial", str(other["trial"]), "--epochs", "1", "--batch-size", "64")
    assert r.returncode == 0, r.stderr
    result = json.loads((out / f"retrain-trial{other['trial']}" / "result.json").read_text())
    assert (result["candidate"], result["params"], result["macs"], result["proxy_score"]) == \
        (other["candidate"], other["params"], other["macs"], other["score"])
    assert not (out / "retrain").exists()  # the winner's own retrain folder is left alone
