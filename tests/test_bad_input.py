"""Each bad input: one line on stderr naming the problem, a non-zero exit, no traceback, nothing lost."""
import json
import shutil

import numpy as np
import pytest

from .conftest import run_nas
from .synthetic import write_npz, write_space


def one_line(r, *words, code=2):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert str(w) in lines[0], lines[0]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    space = write_space(tmp / "small.py")
    data = write_npz(tmp / "d.npz")
    r = run_nas("search", space, "--budget", "6k", "--trials", "1", "--proxy-epochs", "1", "--batch-size", "64",
                "--data", data, "--out", tmp / "run", "--strategy", "random")
    assert r.returncode == 0, r.stderr
    return tmp, space, data, tmp / "run"


def search(tmp, space, data, *extra):
    return run_nas("search", space, "--budget", "6k", "--trials", "1", "--proxy-epochs", "1", "--data", data, *extra)


def test_space_with_no_candidates(tmp_path):
    f = tmp_path / "none.py"
    f.write_text("from nas.spaces import Space, Stem\nspace = Space('none', Stem(8), stages=[])\n")
    one_line(run_nas("search", f, "--budget", "5k"), "none.py", "at least one stage")


def test_space_file_that_is_not_python(tmp_path):
    f = tmp_path / "space.py"
    f.write_bytes(b"\xff\xfe\x00garbage")
    one_line(run_nas("search", f, "--budget", "5k"), "space.py")


def test_missing_data_path(searched, tmp_path):
    tmp, space, data, _ = searched
    one_line(search(tmp, space, tmp_path / "nowhere.npz", "--out", tmp_path / "o"), "data not found", "nowhere.npz")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("arrays,message", [
    (dict(x_train=np.zeros((8, 32, 32), np.uint8)), "(N, H, W, C)"),
    (dict(x_train=np.zeros((8, 32, 32, 3), np.float64)), "uint8"),
    (dict(y_train=np.array([0, 1, 2, 3, 4, 5, 6, 99])), "labels must lie"),
])
def test_arrays_of_the_wrong_shape_dtype_or_label_range(searched, tmp_path, arrays, message):
    tmp, space, data, _ = searched
    base = dict(x_train=np.zeros((8, 32, 32, 3), np.uint8), y_train=np.arange(8) % 4,
                x_test=np.zeros((4, 32, 32, 3), np.uint8), y_test=np.arange(4), classes=np.array(["a", "b", "c", "d"]))
    base.update(arrays)
    np.savez(tmp_path / "bad.npz", **base)
    one_line(search(tmp, space, tmp_path / "bad.npz", "--out", tmp_path / "o"), message)


def test_image_folder_with_an_unreadable_image_and_differing_classes(searched, tmp_path):
    from PIL import Image
    tmp, space, _, _ = searched
    root = tmp_path / "imgs"
    for split, classes in (("train", "abcd"), ("test", "abcd")):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / split / c / "0.png")
    (root / "train" / "a" / "1.png").write_bytes(b"broken")
    one_line(search(tmp, space, root, "--out", tmp_path / "o"), "unreadable image", "1.png")
    (root / "train" / "a" / "1.png").unlink()
    (root / "test" / "d").rename(root / "test" / "e")
    one_line(search(tmp, space, root, "--out", tmp_path / "o"), "classes differ")


@pytest.mark.parametrize("flag,value", [("--trials", "0"), ("--trials", "-2"), ("--proxy-epochs", "0"),
                                        ("--trial-timeout", "-1"), ("--val-fraction", "1.5")])
def test_zero_or_negative_numbers_for_search(searched, flag, value):
    tmp, space, data, _ = searched
    one_line(search(tmp, space, data, flag, value), flag)


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_zero_or_negative_epochs_for_retrain(searched, value):
    _, _, _, run = searched
    one_line(run_nas("retrain", run / "winner.json", "--epochs", value), "--epochs")


def test_retrain_of_a_trial_the_search_does_not_have(searched, tmp_path):
    tmp, _, _, run = searched
    one_line(run_nas("retrain", run / "winner.json", "--trial", "99", "--out", tmp_path / "o"), "no trial 99")
    assert not (tmp_path / "o").exists()
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run / "winner.json", lone / "winner.json")
    one_line(run_nas("retrain", lone / "winner.json", "--trial", "0", "--out", tmp_path / "o"), "trials.jsonl")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag,value", [("--weight-decay", "-1e-4"), ("--weight-decay", "inf"),
                                        ("--label-smoothing", "1"), ("--cutout", "-8"), ("--cutout", "4.5"),
                                        ("--lookahead", "1"), ("--lookahead", "-0.5"), ("--tta-shift", "-1"),
                                        ("--tta-shift", "16"), ("--translate", "-1"), ("--translate", "16")])
def test_bad_regularisation_for_retrain(searched, flag, value):
    _, _, _, run = searched
    one_line(run_nas("retrain", run / "winner.json", flag, value), flag)


def test_out_that_cannot_be_written(searched, tmp_path):
    tmp, space, data, _ = searched
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    one_line(search(tmp, space, data, "--out", blocker / "run"), "cannot write", "run")


def test_out_that_holds_a_different_search(searched):
    tmp, space, data, run = searched
    before = (run / "trials.jsonl").read_text()
    r = run_nas("search", space, "--budget", "5k", "--trials", "1", "--proxy-epochs", "1", "--data", data,
                "--out", run, "--strategy", "random")
    one_line(r, "holds a different search", "budget")
    assert (run / "trials.jsonl").read_text() == before  # nothing lost


def test_winner_missing(tmp_path):
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "winner file not found")


def test_winner_not_json(tmp_path):
    (tmp_path / "winner.json").write_text("{not json")
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "is not JSON")


def test_winner_missing_fields(searched, tmp_path):
    _, _, _, run = searched
    winner = json.loads((run / "winner.json").read_text())
    del winner["architecture"]
    (tmp_path / "winner.json").write_text(json.dumps(winner))
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "lacks architecture")


def test_winner_from_another_version(searched, tmp_path):
    _, _, _, run = searched
    winner = json.loads((run / "winner.json").read_text())
    winner["format"] = 99
    (tmp_path / "winner.json").write_text(json.dumps(winner))
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "format 99")


def test_winner_for_a_space_file_that_has_changed(searched, tmp_path):
    tmp, space, _, run = searched
    changed = tmp_path / "small.py"
    shutil.copy(space, changed)
    changed.write_text(changed.read_text().replace("[8, 16]", "[8, 16, 32]"))
    winner = json.loads((run / "winner.json").read_text())
    winner["space"]["path"] = str(changed)
    (tmp_path / "winner.json").write_text(json.dumps(winner))
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "has changed")


def test_retrain_with_data_of_another_shape(searched, tmp_path):
    _, _, _, run = searched
    np.savez(tmp_path / "small.npz", x_train=np.zeros((8, 16, 16, 3), np.uint8), y_train=np.arange(8) % 4,
             x_test=np.zeros((4, 16, 16, 3), np.uint8), y_test=np.arange(4))
    one_line(run_nas("retrain", run / "winner.json", "--epochs", "1", "--data", tmp_path / "small.npz",
                     "--out", tmp_path / "o"), "expects 32x32x3")


def test_search_with_data_of_another_class_count(searched, tmp_path):
    tmp, space, _, _ = searched
    np.savez(tmp_path / "ten.npz", x_train=np.zeros((20, 32, 32, 3), np.uint8), y_train=np.arange(20) % 10,
             x_test=np.zeros((10, 32, 32, 3), np.uint8), y_test=np.arange(10))
    one_line(search(tmp, space, tmp_path / "ten.npz", "--out", tmp_path / "o"), "10 classes", "expects", "and 4")
    assert not (tmp_path / "o").exists()


def test_winner_whose_candidate_is_not_in_its_space(searched, tmp_path):
    _, _, _, run = searched
    winner = json.loads((run / "winner.json").read_text())
    winner["candidate"]["w1"] = 12345
    (tmp_path / "winner.json").write_text(json.dumps(winner))
    one_line(run_nas("retrain", tmp_path / "winner.json", "--epochs", "1"), "w1=12345")


@pytest.mark.parametrize("device,message", [("gpu", "unknown device"), ("cuda", "no CUDA GPU")])
def test_a_device_that_is_not_there(searched, device, message):
    import torch
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    tmp, space, data, _ = searched
    one_line(search(tmp, space, data, "--device", device), message)


@pytest.mark.parametrize("change,message", [
    (lambda w: w.update(architecture={"stages": 3}), "bad architecture"),
    (lambda w: w.update(architecture=[]), "bad architecture"),
    (lambda w: w["architecture"]["stages"][0].update(block="nonsense"), "bad architecture"),
    (lambda w: w["architecture"]["stages"][0]["knobs"].update(colour="red"), "bad architecture"),
])
def test_winner_with_a_broken_architecture(searched, tmp_path, change, message):
    _, _, _, run = searched
    winner = json.loads((run / "winner.json").read_text())
    change(winner)
    (tmp_path / "winner.json").write_text(json.dumps(winner))
    one_line(run_nas("show", tmp_path / "winner.json"), message)


def test_report_on_a_retrain_whose_result_is_not_one(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"params": 3}))
    (tmp_path / "metrics.csv").write_text("epoch\n")
    one_line(run_nas("report", tmp_path), "result.json lacks", "not a result.json written by nas retrain")
    (tmp_path / "result.json").write_text("[1, 2]")
    one_line(run_nas("report", tmp_path), "not a retrain result")
