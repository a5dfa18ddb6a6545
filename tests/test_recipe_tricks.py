"""airbench's recipe tricks as Recipe options: lookahead of the weights, multi-crop TTA."""
import copy

import torch
from torch import nn

from nas.data import Loader, channel_stats
from nas.execution import choose
from nas.retrain import earlier_run
from nas.train import FULL, Lookahead, Recipe, Schedule, dirac_init, evaluate, tta_views, train

from .synthetic import make_dataset


def small_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_multi_crop_views_are_the_image_its_mirror_and_both_shifted_one_pixel_each_way():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    views = tta_views(x, shift=1)
    assert abs(sum(w for w, _ in views) - 1) < 1e-9 and len(views) == 6
    (_, same), (_, mirror), (_, up_left), (_, up_left_mirror), (_, down_right), _ = views
    assert torch.equal(same, x) and torch.equal(mirror, x.flip(3))
    assert torch.equal(up_left[:, :, 1:, 1:], x[:, :, :-1, :-1])  # content moved one pixel down-right
    assert torch.equal(down_right[:, :, :-1, :-1], x[:, :, 1:, 1:])
    assert torch.equal(up_left_mirror, up_left.flip(3))
    assert [w for w, _ in tta_views(x, shift=0)] == [0.5, 0.5]  # the default: the image and its mirror


def test_evaluation_with_shifted_views_differs_from_mirror_only():
    data = make_dataset(n_train=64, n_test=64)
    mean, std = channel_stats(data.train)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 4))  # not shift-invariant
    execution = choose("cpu").with_(precision="fp32", tune_precision=False)
    loader = Loader(data.test, mean, std, 1000, torch.device("cpu"))
    for x, _ in loader:
        shifted = sum(w * model(v) for w, v in tta_views(x, 1))
        mirror_only = sum(w * model(v) for w, v in tta_views(x, 0))
    assert not torch.allclose(shifted, mirror_only)
    _, acc, tta = evaluate(model, loader, execution, tta=True, tta_shift=1)
    _, _, tta_again = evaluate(model, loader, execution, tta=True, tta_shift=1)
    assert tta == tta_again and 0 <= tta <= 1


def test_tta_is_scored_after_the_last_epoch_only_and_every_epoch_keeps_its_plain_test_accuracy():
    data = make_dataset(n_train=64, n_test=32)
    mean, std = channel_stats(data.train)
    execution = choose("cpu").with_(precision="fp32", tune_precision=False, compile="off")
    result = train(small_net(), data.train, data.test, FULL.with_(epochs=3, batch_size=32, tta_shift=1), mean, std,
                   execution=execution)
    assert [s.test_acc_tta is None for s in result.history] == [True, True, False]
    assert all(s.test_acc is not None for s in result.history)


def test_a_pull_moves_the_slow_weights_by_the_decay_then_sets_the_trained_weights_to_them():
    torch.manual_seed(0)
    model = small_net()
    lookahead = Lookahead(model, decay=0.9)
    start = [t.clone() for t in lookahead.slow]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    moved = [t.clone() for t in lookahead.fast]
    lookahead.pull(steps=5, progress=1.0)
    keep = 0.9 ** 5
    for slow, fast, s0, m in zip(lookahead.slow, lookahead.fast, start, moved):
        assert torch.allclose(slow, keep * s0 + (1 - keep) * m) and torch.equal(fast, slow)
    assert torch.equal(lookahead.fast[0], model[0].weight)  # the model's own tensors were set
    before = [t.clone() for t in lookahead.fast]
    lookahead.pull(steps=5, progress=0.0)  # early in training the pull keeps nothing of the slow weights
    assert all(torch.equal(a, b) for a, b in zip(before, lookahead.fast))


def test_lookahead_changes_training_and_a_run_resumed_from_an_epoch_matches_the_whole_run():
    data = make_dataset(n_train=128, n_test=32)
    mean, std = channel_stats(data.train)
    execution = choose("cpu").with_(precision="fp32", tune_precision=False, compile="off")
    recipe = FULL.with_(epochs=2, batch_size=32, lookahead=0.95, tta=False)

    def run(recipe, start_epoch=0, state=None):
        torch.manual_seed(0)
        model = small_net()
        saved = {}
        if state is not None:
            model.load_state_dict(state["model"])
        train(model, data.train, data.test, recipe, mean, std, execution=execution, start_epoch=start_epoch,
              optimizer_state=state and state["optimizer"],
              on_checkpoint=lambda e, m, o: saved.setdefault(e, copy.deepcopy({"model": m.state_dict(),
                                                                               "optimizer": o.state_dict()})))
        return model, saved

    whole, saved = run(recipe)
    resumed, _ = run(recipe, start_epoch=1, state=saved[1])
    plain, _ = run(recipe.with_(lookahead=0.0))
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert not torch.allclose(whole[-1].weight, plain[-1].weight)


def test_records_written_before_a_recipe_field_existed_still_match_the_same_retrain(tmp_path):
    from nas.files import save_torch
    from nas.spaces import Space, Stage, Stem, Head

    arch = Space(name="s", stem=Stem(width=8), stages=[Stage(block="conv", width=8, depth=1)],
                 head=Head(pool=1), num_classes=4).resolve({})
    old = {k: v for k, v in FULL.to_dict().items()
           if k not in ("lookahead", "tta_shift", "norm_bias_lr", "freeze_norm_weight", "dirac_init", "lr_start",
                        "decay", "lr_end", "bn_momentum", "classifier_scale")}
    old["augment"] = {k: v for k, v in old["augment"].items() if k != "alternate"}
    save_torch(tmp_path / "checkpoint.pt", {"epoch": 1, "model": {}, "optimizer": {}, "recipe": old,
                                            "architecture": arch.to_dict()})
    done, ckpt = earlier_run(tmp_path, arch, FULL)
    assert done is None and ckpt["epoch"] == 1
    assert Recipe().lookahead == 0 and Recipe().tta_shift == 0  # new fields default to what the code did before
    assert (Recipe().norm_bias_lr, Recipe().freeze_norm_weight, Recipe().dirac_init) == (1, False, False)
    assert not Recipe().augment.alternate
    assert (Recipe().lr_start, Recipe().decay, Recipe().lr_end) == (0, "cosine", 0)
    assert (Recipe().bn_momentum, Recipe().classifier_scale) == (0.1, 1)


def _one_step(recipe, data, mean, std):
    """A small net's weights before and after one training step of `recipe` from the same start."""
    torch.manual_seed(0)
    model = small_net()
    with torch.no_grad():
        model[1].weight.fill_(1.5)  # a BN scale away from 1, so that a frozen one is seen to stay put
    before = copy.deepcopy(model.state_dict())
    execution = choose("cpu").with_(precision="fp32", tune_precision=False, compile="off")
    train(model, data.train, data.test, recipe, mean, std, execution=execution)
    return before, model.state_dict()


def test_norm_biases_learn_at_their_scaled_rate_and_frozen_norm_scales_stay_put():
    data = make_dataset(n_train=32, n_test=32)
    mean, std = channel_stats(data.train)
    recipe = FULL.with_(epochs=1, batch_size=32, tta=False)  # one step: the same gradients in every run
    before, plain = _one_step(recipe, data, mean, std)
    _, scaled = _one_step(recipe.with_(norm_bias_lr=64.0), data, mean, std)
    moved = plain["1.bias"] - before["1.bias"]
    assert moved.abs().max() > 0 and torch.allclose(scaled["1.bias"] - before["1.bias"], 64 * moved, rtol=1e-4)
    for name in ("0.weight", "1.weight", "5.weight", "5.bias"):  # the rest learns as before
        assert torch.allclose(scaled[name], plain[name])
    _, frozen = _one_step(recipe.with_(freeze_norm_weight=True), data, mean, std)
    assert torch.equal(frozen["1.weight"], before["1.weight"]) and not torch.equal(plain["1.weight"], before["1.weight"])
    assert not torch.equal(frozen["1.bias"], before["1.bias"])


def test_dirac_init_makes_each_fitting_conv_pass_its_input_through_on_its_first_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.Conv2d(6, 3, 3, padding=1),
                          nn.Conv2d(6, 6, 3, padding=1, groups=6))
    wider, narrower, depthwise = (m.weight.detach().clone() for m in model)
    dirac_init(model)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(model[0](x)[:, :4], x, atol=1e-6)  # the first 4 of 6 filters: the identity
    assert torch.equal(model[0].weight[4:], wider[4:])  # the others keep their random start
    assert torch.equal(model[1].weight, narrower) and torch.equal(model[2].weight, depthwise)  # left alone


def test_airbench_triangle_warms_up_from_a_fraction_of_the_peak_and_falls_in_a_line_to_its_end():
    recipe = FULL.with_(epochs=10, warmup=0.2, lr_start=0.2, decay="linear", lr_end=0.07)
    schedule = Schedule.of(recipe, steps_per_epoch=10)  # 100 steps, 20 of warm-up
    lrs = [schedule.lr(step, 1.0) for step in range(100)]
    assert abs(lrs[0] - (0.2 + 0.8 / 20)) < 1e-9 and lrs[19] == 1.0
    falls = [a - b for a, b in zip(lrs[20:], lrs[21:])]
    assert all(abs(f - falls[0]) < 1e-9 for f in falls) and falls[0] > 0  # a straight line down
    assert abs(schedule.lr(100, 1.0) - 0.07) < 1e-9
    cosine = Schedule.of(FULL.with_(epochs=10, warmup=0.2), 10)  # the default is unchanged
    assert cosine.lr(0, 1.0) == 1 / 20 and abs(cosine.lr(60, 1.0) - 0.5) < 1e-9 and cosine.lr(100, 1.0) == 0


class _Scaled(nn.Module):
    """small_net with its logits multiplied by a constant: airbench's head."""

    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.net(x) * self.scale


def test_classifier_scale_trains_exactly_as_a_network_whose_logits_are_multiplied_by_it():
    data = make_dataset(n_train=96, n_test=32)
    mean, std = channel_stats(data.train)
    execution = choose("cpu").with_(precision="fp32", tune_precision=False, compile="off")
    recipe = FULL.with_(epochs=2, batch_size=32, tta=False, weight_decay=5e-3)  # 6 steps: momentum and decay act
    torch.manual_seed(0)
    start = small_net()
    scaled = _Scaled(copy.deepcopy(start), 1 / 9)
    ours = copy.deepcopy(start)
    train(scaled, data.train, data.test, recipe, mean, std, execution=execution)
    train(ours, data.train, data.test, recipe.with_(classifier_scale=1 / 9), mean, std, execution=execution)
    x = torch.randn(8, 3, 32, 32)
    scaled.eval(), ours.eval()
    assert torch.allclose(scaled(x), ours(x), atol=1e-5)  # the same network, step for step
    plain = copy.deepcopy(start)
    train(plain, data.train, data.test, recipe, mean, std, execution=execution)
    plain.eval()
    assert not torch.allclose(plain(x), ours(x), atol=1e-3)


def test_bn_momentum_sets_how_fast_the_running_statistics_follow_the_batches():
    data = make_dataset(n_train=32, n_test=32)
    mean, std = channel_stats(data.train)
    execution = choose("cpu").with_(precision="fp32", tune_precision=False, compile="off")
    means = []
    for momentum in (0.1, 0.4):
        torch.manual_seed(0)
        model = small_net()
        train(model, data.train, data.test, FULL.with_(epochs=1, batch_size=32, tta=False, bn_momentum=momentum),
              mean, std, execution=execution)
        assert model[1].momentum == momentum
        means.append(model[1].running_mean.clone())
    assert torch.allclose(means[1], 4 * means[0], rtol=1e-3)  # one step from zero: momentum x the batch mean
