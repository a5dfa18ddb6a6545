"""The trainer's choice of execution: bf16 where the CPU has it, fp32 where not, flags override,
and bf16 trains the same network to nearly the same loss."""
import pytest
import torch
import torch.nn.functional as F

from nas import execution as ex
from nas.data import channel_stats
from nas.errors import UserError
from nas.spaces import Space, Stage, Stem
from nas.train import PROXY, train
from .synthetic import make_dataset


def tiny_space():
    return Space("t", Stem(8), [Stage("mixer", 8, kernel=5), Stage("mbconv", 16, downsample="stride")], num_classes=4)


def test_cpu_without_bf16_falls_back_to_fp32(monkeypatch):
    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: False)
    chosen = ex.choose("cpu")
    assert chosen.precision == "fp32" and not chosen.tune_precision and chosen.channels_last
    with pytest.raises(UserError, match="no native bf16"):
        ex.choose("cpu", precision="bf16")
    # and training runs in fp32 end to end
    data = make_dataset(64, 16)
    mean, std = channel_stats(data.train)
    result = train(tiny_space().build({}), data.train, data.test, PROXY.with_(epochs=1, batch_size=32), mean, std,
                   execution=chosen)
    assert result.execution.precision == "fp32" and result.execution.compile == "off"


def test_cpu_with_bf16_times_it_against_fp32(monkeypatch):
    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: True)
    chosen = ex.choose("cpu")
    assert chosen.precision == "bf16" and chosen.tune_precision
    assert "timed against fp32" in chosen.describe()
    data = make_dataset(64, 16)
    mean, std = channel_stats(data.train)
    result = train(tiny_space().build({}), data.train, data.test, PROXY.with_(epochs=1, batch_size=32), mean, std,
                   execution=chosen)
    assert result.execution.precision in ("bf16", "fp32") and not result.execution.tune_precision
    # a short run never compiles under 'auto'
    assert result.execution.compile == "off"


def test_flags_override_the_choice(monkeypatch):
    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: True)
    chosen = ex.choose("cpu", precision="fp32", compile="off", threads=1)
    assert (chosen.precision, chosen.compile, chosen.threads, chosen.tune_precision) == ("fp32", "off", 1, False)
    with pytest.raises(UserError):
        ex.choose("cpu", precision="fp16")
    with pytest.raises(UserError):
        ex.choose("tpu")


def test_the_cpu_keeps_freed_memory_where_malloc_can_be_told(monkeypatch):
    monkeypatch.setattr(ex, "can_keep_memory", lambda: True)
    chosen = ex.choose("cpu")
    assert chosen.keep_memory and "memory kept" in chosen.describe()
    assert not ex.choose("cpu", keep_memory=False).keep_memory  # --no-keep-memory
    monkeypatch.setattr(ex, "can_keep_memory", lambda: False)  # another C library: nothing to tell it
    assert not ex.choose("cpu").keep_memory and "memory kept" not in ex.choose("cpu").describe()


def test_an_execution_without_keep_memory_leaves_malloc_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(ex, "keep_freed_memory", lambda: calls.append(1) or True)
    ex.Execution(threads=torch.get_num_threads(), keep_memory=False).apply()
    assert calls == []
    ex.Execution(threads=torch.get_num_threads(), keep_memory=True).apply()
    assert calls == [1]


@pytest.mark.skipif(not ex.can_keep_memory(), reason="not glibc: malloc cannot be told")
def test_glibc_takes_the_settings_once_and_tensors_still_allocate():
    assert ex.keep_freed_memory() and ex.keep_freed_memory()  # idempotent
    big = torch.ones(64, 1024, 1024)  # 256 MB: from the heap now, not an mmap
    assert big.sum().item() == 64 * 1024 * 1024
    del big


def test_threads_never_exceed_the_usable_cores():
    assert 1 <= ex.choose("cpu").threads == ex.usable_cores()


@pytest.mark.skipif(not ex.cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_loss_is_close_to_fp32_on_a_fixed_batch():
    torch.manual_seed(0)
    model = tiny_space().build({}).to(memory_format=torch.channels_last).eval()
    x = torch.randn(32, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (32,))
    with torch.no_grad():
        fp32 = F.cross_entropy(model(x), y).item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = F.cross_entropy(model(x).float(), y).item()
    assert abs(bf16 - fp32) < 0.02 * max(1.0, abs(fp32))


def test_bf16_training_stays_close_to_fp32(monkeypatch):
    """Same data, seed and network: two epochs in bf16 and in fp32 end at nearly the same loss."""
    if not ex.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16")
    data = make_dataset(128, 16)
    mean, std = channel_stats(data.train)
    losses = {}
    for precision in ("bf16", "fp32"):
        torch.manual_seed(0)
        run = train(tiny_space().build({}), data.train, data.test, PROXY.with_(epochs=2, batch_size=32), mean, std,
                    execution=ex.choose("cpu", precision=precision, compile="off"))
        losses[precision] = run.history[-1].train_loss
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]


def test_a_timed_decision_is_remembered_for_the_same_network(monkeypatch, tmp_path):
    """Timing noise must not change what the next identical run does (and so its scores)."""
    monkeypatch.setenv("NAS_DATA_CACHE", str(tmp_path))
    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(ex.DecisionCache, "_memory", {})
    import nas.train as train_module
    calls = []
    real = train_module._timed_steps

    def spy(net, optimizer, x, y, recipe, autocast, device_type, steps):
        calls.append(autocast)
        return {True: 2.0, False: 1.0}[autocast] if steps > 1 else real(net, optimizer, x, y, recipe, autocast,
                                                                          device_type, steps)

    monkeypatch.setattr(train_module, "_timed_steps", spy)
    monkeypatch.setattr(train_module, "TUNE_MIN_STEPS", 0)  # time even this short run
    data = make_dataset(64, 16)
    mean, std = channel_stats(data.train)
    first = train(tiny_space().build({}), data.train, data.test, PROXY.with_(epochs=1, batch_size=32), mean, std,
                  execution=ex.choose("cpu"))
    assert first.execution.precision == "fp32" and sorted(calls) == [False, True]  # both timed, fp32 faster here
    assert (tmp_path / "decisions.json").is_file()
    monkeypatch.setattr(ex.DecisionCache, "_memory", {})  # a new process: read back from the file
    calls.clear()
    second = train(tiny_space().build({}), data.train, data.test, PROXY.with_(epochs=1, batch_size=32), mean, std,
                   execution=ex.choose("cpu"))
    assert second.execution.precision == "fp32" and calls == [False]  # not timed again


def test_compile_is_kept_only_when_its_steps_in_the_training_loop_beat_the_eager_ones(monkeypatch):
    import torch

    from nas.train import COMPILE_WARMUP_STEPS, CompileCheck

    compiled_net = torch.nn.Identity()
    monkeypatch.setattr(torch, "compile", lambda model: compiled_net)
    model = torch.nn.Linear(2, 2)

    def decide(eager_seconds, compiled_seconds):
        check = CompileCheck(model)
        for s in [5.0] + [eager_seconds] * CompileCheck.CHECK_STEPS:  # the first eager step is a warm-up
            assert check.net() is model and check.record(s) is None
        assert check.net() is compiled_net
        for s in [60.0] * COMPILE_WARMUP_STEPS + [compiled_seconds] * (CompileCheck.CHECK_STEPS - 1):
            assert check.record(s) is None  # compiling, then timed
        return check.record(compiled_seconds), check.net()

    assert decide(1.0, 0.5) == ("on", compiled_net)
    assert decide(1.0, 0.95) == ("off", model)  # under 10% faster: not worth it
    assert decide(1.0, 1.3) == ("off", model)


def test_no_keep_memory_on_the_command_line_reaches_the_execution(monkeypatch):
    from nas.cli import _execution, build_parser
    monkeypatch.setattr(ex, "can_keep_memory", lambda: True)
    for argv, kept in ((["retrain", "w.json"], True), (["retrain", "w.json", "--no-keep-memory"], False),
                       (["search", "spaces/tiny.py", "--budget", "50000", "--no-keep-memory"], False)):
        args = build_parser().parse_args(argv)
        assert _execution(args).keep_memory is kept


def test_a_training_run_gives_kept_memory_back_when_it_ends_or_fails(monkeypatch):
    released = []
    monkeypatch.setattr(ex, "release_freed_memory", lambda: released.append(1))

    @ex.releases_freed_memory
    def run(fail: bool):
        if fail:
            raise RuntimeError("diverged")
        return "done"

    assert run(False) == "done" and released == [1]
    with pytest.raises(RuntimeError):
        run(True)
    assert released == [1, 1]
