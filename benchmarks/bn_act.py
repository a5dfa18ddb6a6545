"""Training-mode BatchNorm + activation, forward and backward: PyTorch's (F.batch_norm, then the
activation) against nas.native's fused C kernel, per shape, activation and precision, with the
largest relative difference of the output and the input gradient against PyTorch in fp32."""

import torch
import torch.nn.functional as F
from common import median_seconds, parser, publish, table

from nas import native

# batch, channels, size: the tiny space's BN shapes (stems and stages at 32, 16, 8 pixels; mbconv's
# expanded widths)
SHAPES = [(256, 24, 32), (256, 48, 16), (256, 96, 8), (256, 144, 16)]
ACTS = {"gelu": F.gelu, "relu": F.relu, "none": lambda z: z}



def step(x, weight, bias, grad, act, fused: bool):
    """One forward and backward; returns (output, input gradient)."""
    if fused:
        y, mean, var = torch.ops.nas.bn_act_forward(x, weight, bias, 1e-5, native.ACTIVATIONS[act])
        return y, torch.ops.nas.bn_act_backward(x, grad, weight, bias, mean, var, 1e-5, native.ACTIVATIONS[act])[0]
    xi, w, b = x.detach().requires_grad_(), weight.detach().requires_grad_(), bias.detach().requires_grad_()
    y = ACTS[act](F.batch_norm(xi, None, None, w, b, True, 0.1, 1e-5))
    y.backward(grad)
    return y, xi.grad


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not native.available():
        raise SystemExit("nas.native's C kernels did not build here (no C compiler?): nothing to compare")
    rows = []
    for n, c, hw in SHAPES:
        for act in ACTS:
            for dtype in (torch.float32, torch.bfloat16):
                g = torch.Generator().manual_seed(0)
                x = (torch.randn(n, c, hw, hw, generator=g) * 2 + 1).to(dtype).contiguous(memory_format=torch.channels_last)
                grad = torch.randn(n, c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
                weight, bias = torch.rand(c, generator=g) + 0.5, torch.rand(c, generator=g) - 0.5
                plain = median_seconds(lambda: step(x, weight, bias, grad, act, False), repeats=7)
                fused = median_seconds(lambda: step(x, weight, bias, grad, act, True), repeats=7)
                ref = step(x.float(), weight, bias, grad.float(), act, False)
                got = step(x, weight, bias, grad, act, True)
                diff = [((a.float() - r).abs().max() / r.abs().max()).item() for a, r in zip(got, ref)]
                rows.append([f"{c} ch {hw}x{hw}", act, str(dtype).replace("torch.", ""), f"{plain * 1e3:.1f}",
                             f"{fused * 1e3:.1f}", f"**{plain / fused:.2f}x**", f"{diff[0]:.0e}", f"{diff[1]:.0e}"])
                print(rows[-1], flush=True)
    publish("BatchNorm + activation: PyTorch against the fused C kernel",
            table(["shape", "activation", "dtype", "PyTorch ms", "fused ms", "speed-up", "output max rel. diff.",
                   "input grad max rel. diff."], rows)
            + f"\n\nBatch {SHAPES[0][0]}, channels_last, {args.threads} thread(s), median of 7, forward + backward; "
              "differences against PyTorch in fp32 on the same (rounded) inputs.", args.docs)


if __name__ == "__main__":
    main()
