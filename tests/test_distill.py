"""Knowledge distillation: the loss, the teacher's logits per view, and `nas retrain --teacher`."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import Augment, Loader, Split, load
from nas.distill import LOGITS_FILE, load_teacher, teacher_logits
from nas.errors import UserError
from nas.retrain import run_retrain
from nas.train import FULL, loss_of

from .conftest import run_nas
from .test_bad_input import one_line
from .test_retrain_export import searched_winner
from .synthetic import make_dataset, write_npz


def test_without_a_teacher_the_loss_is_the_labels_cross_entropy():
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    expected = F.cross_entropy(logits, y, label_smoothing=0.1)
    assert torch.allclose(loss_of(logits, y, FULL), expected)
    assert torch.allclose(loss_of(logits, y, FULL, teacher_logits=torch.randn(8, 5)), expected)  # distill 0


def test_the_distilled_loss_mixes_cross_entropy_and_the_scaled_divergence():
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    recipe = FULL.with_(distill=0.75, temperature=3.0)
    ce = F.cross_entropy(logits, y, label_smoothing=0.1)
    assert torch.allclose(loss_of(logits, y, recipe, teacher_logits=logits.clone()), 0.25 * ce)  # KL of itself: 0
    teacher = torch.randn(8, 5)
    p = (teacher / 3).softmax(1)
    kl = (p * (p.log() - (logits / 3).log_softmax(1))).sum(1).mean()
    assert torch.allclose(loss_of(logits, y, recipe, teacher_logits=teacher), 0.25 * ce + 0.75 * 9 * kl, atol=1e-6)


def test_each_image_gets_the_teacher_logits_of_the_view_it_is_shown_in():
    n = 64
    x = np.zeros((n, 8, 8, 3), np.uint8)
    x[:, :, :4] = 200  # bright left half: a mirrored image has its bright half on the right
    soft = torch.stack([torch.arange(n).float(), -torch.arange(n).float() - 1], 1)[:, :, None].repeat(1, 1, 3)
    loader = Loader(Split(x, np.arange(n) % 3), [0.0] * 3, [1 / 255] * 3, 16, "cpu",
                    augment=Augment(flip=True, translate=0), shuffle=True, seed=3, soft_targets=soft)
    seen = set()
    for xb, yb, tb in loader:
        mirrored = xb[:, 0, 0, 0] == 0  # the first column is dark only in a mirrored image
        index = torch.where(mirrored, -tb[:, 0] - 1, tb[:, 0]).long()
        assert (tb[:, 0] < 0).tolist() == mirrored.tolist()  # the mirrored view's logits for mirrored images
        assert (index % 3).tolist() == yb.tolist()  # and the logits of the image itself
        seen |= set(mirrored.tolist())
    assert seen == {True, False}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A frozen network (model.py + model.pkl), retrained briefly on the synthetic data."""
    tmp = tmp_path_factory.mktemp("teacher")
    run_retrain(searched_winner(tmp), make_dataset(), tmp / "teacher", FULL.with_(epochs=1, batch_size=64))
    return tmp / "teacher"


def test_teacher_logits_are_its_outputs_on_each_image_and_its_mirror_and_are_kept(teacher, tmp_path):
    data = make_dataset()
    logits = teacher_logits(teacher, data.train.x[:40], 4, tmp_path)
    net, mean, std, _ = load_teacher(teacher)
    x = (torch.from_numpy(data.train.x[:40]).permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) \
        / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(logits[:, 0], net(x), atol=1e-4) and torch.allclose(logits[:, 1], net(x.flip(3)), atol=1e-4)
    assert (tmp_path / LOGITS_FILE).exists()
    (teacher / "model.py").rename(teacher / "model.py.away")  # the kept logits are read, the network not loaded
    try:
        assert torch.equal(teacher_logits(teacher, data.train.x[:40], 4, tmp_path), logits)
        with pytest.raises(UserError, match="no model.py"):  # other images: computed again, so loaded
            teacher_logits(teacher, data.train.x[:30], 4, tmp_path)
    finally:
        (teacher / "model.py.away").rename(teacher / "model.py")


def test_a_teacher_of_another_class_count_is_refused(teacher):
    with pytest.raises(UserError, match="predicts 4 classes, the data has 10"):
        teacher_logits(teacher, make_dataset().train.x[:8], 10)


def test_retrain_with_a_teacher_records_it_and_trains(teacher, tmp_path):
    npz = write_npz(tmp_path / "d.npz")
    r = run_nas("retrain", teacher / "result.json", "--epochs", "1", "--batch-size", "64", "--data", npz,
                "--teacher", teacher, "--distill", "0.5", "--temperature", "2", "--out", tmp_path / "student")
    assert r.returncode == 0, r.stderr
    assert "training images ranked right, distilled at weight 0.5, temperature 2" in r.stdout
    recipe = json.loads((tmp_path / "student" / "result.json").read_text())["recipe"]
    assert (recipe["teacher"], recipe["distill"], recipe["temperature"]) == (str(teacher), 0.5, 2.0)
    assert (tmp_path / "student" / LOGITS_FILE).exists()


@pytest.mark.parametrize("extra,words", [(("--distill", "0.5"), ("--distill", "--teacher")),
                                          (("--temperature", "2"), ("--temperature", "--teacher")),
                                          (("--teacher", "nowhere"), ("teacher nowhere", "no model.py")),
                                          (("--teacher", ".", "--distill", "0"), ("--distill",))])
def test_bad_distillation_input(teacher, tmp_path, extra, words):
    out = tmp_path / "student"
    npz = write_npz(tmp_path / "d.npz")
    one_line(run_nas("retrain", teacher / "result.json", "--epochs", "1", "--data", npz, "--out", out, *extra), *words)
    assert not out.exists()  # nothing written
