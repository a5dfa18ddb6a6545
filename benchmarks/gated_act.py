"""The token-mixer's gated activation act(a) * b (a, b the halves of the first 1x1 conv's channels), forward
and backward: PyTorch's chunk, activation and multiply against nas.native's C kernel, per shape and
precision; then the training step of spaces/tiny.py's 40-50k mixer candidate (cpu_throughput.py's) with
the kernel and without it, interleaved in one process, bf16 autocast and channels_last as the trainer runs it."""

import statistics
import time

import torch
import torch.nn.functional as F
from common import median_seconds, parser, publish, table
from cpu_throughput import family_candidate

from nas import kernels, native

# batch, hidden channels (each half), size: the tiny space's mixer widths at 32, 16 and 8 pixels, expansion 2
SHAPES = [(256, 48, 32), (256, 96, 16), (256, 144, 16), (256, 192, 8)]


def step(h, grad, fused: bool):
    """One forward and backward of GELU(a) * b; returns (output, h's gradient)."""
    if fused:
        code = native.ACTIVATIONS["gelu"]
        return torch.ops.nas.gated_act(h, code), torch.ops.nas.gated_act_backward(h, grad, code)
    hi = h.detach().requires_grad_()
    a, b = hi.chunk(2, dim=1)
    y = F.gelu(a) * b
    y.backward(grad)
    return y, hi.grad


def network_steps(batch: int, rounds: int, seed: int):
    """Median ms of a training step of the mixer candidate with the C kernel and without it, ABAB."""
    torch.manual_seed(seed)
    model = family_candidate("mixer").build().to(memory_format=torch.channels_last)
    kernels.accelerate(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    applies = native.gated_act_applies

    def one(fused: bool) -> float:
        native.gated_act_applies = applies if fused else (lambda *a: False)
        try:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - start
        finally:
            native.gated_act_applies = applies

    for fused in (False, True, False, True):  # warm-up
        one(fused)
    times = {False: [], True: []}
    for _ in range(rounds):
        for fused in (False, True):
            times[fused].append(one(fused))
    return statistics.median(times[False]) * 1e3, statistics.median(times[True]) * 1e3


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not native.available():
        raise SystemExit("nas.native's C kernels did not build here (no C compiler?): nothing to compare")
    rows = []
    for n, c, hw in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            h = torch.randn(n, 2 * c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            grad = torch.randn(n, c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            plain = median_seconds(lambda: step(h, grad, False), repeats=7)
            fused = median_seconds(lambda: step(h, grad, True), repeats=7)
            ref = step(h.float(), grad.float(), False)
            got = step(h, grad, True)
            diff = [((a.float() - r).abs().max() / r.abs().max()).item() for a, r in zip(got, ref)]
            rows.append([f"2x{c} ch {hw}x{hw}", str(dtype).replace("torch.", ""), f"{plain * 1e3:.1f}",
                         f"{fused * 1e3:.1f}", f"**{plain / fused:.2f}x**", f"{diff[0]:.0e}", f"{diff[1]:.0e}"])
            print(rows[-1], flush=True)
    plain_ms, fused_ms = network_steps(args.batch, args.rounds, args.seed)
    print(f"mixer step: {plain_ms:.0f} ms plain, {fused_ms:.0f} ms fused", flush=True)
    publish("The mixer's gated activation: PyTorch against the C kernel",
            table(["shape", "dtype", "PyTorch ms", "C kernel ms", "speed-up", "output max rel. diff.",
                   "h grad max rel. diff."], rows)
            + f"\n\nBatch {SHAPES[0][0]}, channels_last, GELU, {args.threads} thread(s), median of 7, forward + "
              "backward; differences against PyTorch in fp32 on the same (rounded) inputs.\n\n"
              f"Training step of cpu_throughput.py's mixer candidate (batch {args.batch}, bf16 autocast, channels_last, "
              f"the other kernels on, synthetic input), median of {args.rounds} interleaved: **{plain_ms:.0f} ms** with "
              f"PyTorch's gated activation, **{fused_ms:.0f} ms** with the C kernel: **{plain_ms / fused_ms:.2f}x**.",
            args.docs)


if __name__ == "__main__":
    main()
