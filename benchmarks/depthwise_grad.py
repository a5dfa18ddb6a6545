"""The depthwise weight gradient: oneDNN's own, nas.kernels' block-diagonal grouped-conv gradient
(BLOCK channels per group) and nas.native's C kernel, per shape and precision, exactness checked
against oneDNN in fp32."""

import torch
from common import median_seconds, parser, publish, table

from nas import native
from nas.kernels import BLOCK

# channels, kernel, size, stride: the tiny space's depthwise shapes (mbconv's expanded widths, the
# mixer's merged MixConv) and a 3x3 one
SHAPES = [(16, 7, 32, 1), (96, 7, 32, 1), (64, 5, 16, 1), (32, 5, 32, 1), (72, 7, 32, 2), (144, 7, 8, 1),
          (48, 3, 16, 1)]



def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not native.available():
        raise SystemExit("nas.native's C kernel did not build here (no C compiler?): nothing to compare")
    backward = torch.ops.aten.convolution_backward
    rows = []
    for c, k, hw, stride in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(args.batch, c, hw, hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
            out = (hw + 2 * (k // 2) - k) // stride + 1
            g = torch.randn(args.batch, c, out, out, dtype=dtype).contiguous(memory_format=torch.channels_last)
            w, dense = torch.empty(c, 1, k, k, dtype=dtype), torch.empty(c, BLOCK, k, k, dtype=dtype)
            pad, strides = [k // 2] * 2, [stride] * 2

            def onednn(x=x, g=g, w=w):
                return backward(g, x, w, None, strides, pad, [1, 1], False, [0, 0], c, [False, True, False])[1]

            def blocks():
                full = backward(g, x, dense, None, strides, pad, [1, 1], False, [0, 0], c // BLOCK,
                                [False, True, False])[1]
                return full[torch.arange(c), torch.arange(c) % BLOCK].unsqueeze(1)

            def c_kernel():
                return torch.ops.nas.depthwise_wgrad(x, g, k, stride, k // 2)

            exact = onednn(x.float(), g.float(), w.float())
            errors = [((f().float() - exact).abs().max() / exact.abs().max()).item() for f in (blocks, c_kernel)]
            a, b, n = median_seconds(onednn), median_seconds(blocks), median_seconds(c_kernel)
            flops = 2 * args.batch * c * out * out * k * k
            rows.append([f"{c} ch {k}x{k} {hw}x{hw}" + (f" stride {stride}" if stride > 1 else ""),
                         str(dtype).removeprefix("torch."), f"{1000 * a:.1f}", f"{1000 * b:.1f}", f"{1000 * n:.1f}",
                         f"**{min(a, b) / n:.2f}x**", f"{flops / n / 1e9:.0f}", f"{errors[0]:.0e}", f"{errors[1]:.0e}"])
            print(rows[-1], flush=True)
    publish("Depthwise weight gradient: oneDNN, the block-diagonal trick and the C kernel",
            table(["shape", "dtype", "oneDNN ms", f"blocks of {BLOCK} ms", "C kernel ms", "C vs the better other",
                   "C kernel GFLOP/s", "blocks max rel. diff.", "C max rel. diff."], rows)
            + f"\n\nBatch {args.batch}, channels_last, {args.threads} thread(s), median of 5; differences against oneDNN in "
              "fp32 on the same (rounded) inputs.", args.docs)


if __name__ == "__main__":
    main()
