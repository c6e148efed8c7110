using System.Numerics.Tensors;

namespace Raft.Model.Ops;

/// <summary>
/// RMSNorm as Hugging Face's LlamaRMSNorm, in fp32: y = w ⊙ (x · rsqrt(mean(x²) + ε)).
/// Backward, with r = rsqrt(mean(x²)+ε) saved per row and s = Σ_i dy_i w_i x_i:
/// dx_i = r·w_i·dy_i − x_i·r³·s / C, dw_i += Σ_rows dy_i·x_i·r.
/// </summary>
internal static unsafe class RmsNorm
{
    /// <summary>Normalizes every row; saves r = rsqrt(mean(x²)+ε) per row into rstd.</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, Span<float> rstd,
        int n, int c, float eps, int threads)
    {
        // x: [N, C]   w: [C]   y: [N, C]   rstd: [N]
        fixed (float* px = x, pw = w, py = y, pr = rstd)
        {
            nint ax = (nint)px, aw = (nint)pw, ay = (nint)py, ar = (nint)pr;
            int chunk = Par.ChunkSize(n, Par.Resolve(threads) * 4, 16);
            Par.For((n + chunk - 1) / chunk, n * (long)c > 1 << 15 ? threads : 1, ci =>
            {
                var wv = new ReadOnlySpan<float>((float*)aw, c);
                for (int row = ci * chunk; row < Math.Min(n, (ci + 1) * chunk); row++)
                {
                    var xr = new ReadOnlySpan<float>((float*)ax + (long)row * c, c);
                    var yr = new Span<float>((float*)ay + (long)row * c, c);
                    float r = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / c + eps);
                    ((float*)ar)[row] = r;
                    TensorPrimitives.Multiply(xr, r, yr);
                    TensorPrimitives.Multiply(yr, wv, yr);
                }
            });
        }
    }

    /// <summary>dx[N, C] = (or += with accumulateDx) the input gradient; dw[C] += the weight gradient.</summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd,
        Span<float> dx, Span<float> dw, int n, int c, int threads, bool accumulateDx)
    {
        // dy: [N, C]   x: [N, C]   w: [C]   rstd: [N]   dx: [N, C]   dw: [C]
        fixed (float* pdy = dy, px = x, pw = w, pr = rstd, pdx = dx)
        {
            nint ady = (nint)pdy, ax = (nint)px, aw = (nint)pw, ar = (nint)pr, adx = (nint)pdx;
            int chunk = Par.ChunkSize(n, Par.Resolve(threads) * 4, 16);
            Par.For((n + chunk - 1) / chunk, n * (long)c > 1 << 15 ? threads : 1, ci =>
            {
                var wv = new ReadOnlySpan<float>((float*)aw, c);
                Span<float> tmp = c <= 4096 ? stackalloc float[c] : new float[c];
                for (int row = ci * chunk; row < Math.Min(n, (ci + 1) * chunk); row++)
                {
                    var xr = new ReadOnlySpan<float>((float*)ax + (long)row * c, c);
                    var dyr = new ReadOnlySpan<float>((float*)ady + (long)row * c, c);
                    var dxr = new Span<float>((float*)adx + (long)row * c, c);
                    float r = ((float*)ar)[row];
                    TensorPrimitives.Multiply(dyr, wv, tmp);                 // tmp = dy ⊙ w
                    float s = TensorPrimitives.Dot(tmp, xr);                 // Σ dy w x
                    float coef = -r * r * r * s / c;
                    if (accumulateDx)
                    {
                        TensorPrimitives.MultiplyAdd(tmp, r, dxr, dxr);
                        TensorPrimitives.MultiplyAdd(xr, coef, dxr, dxr);
                    }
                    else
                    {
                        TensorPrimitives.Multiply(tmp, r, dxr);
                        TensorPrimitives.MultiplyAdd(xr, coef, dxr, dxr);
                    }
                }
            });
        }
        if (dw.IsEmpty) return;   // a frozen weight: no gradient
        Span<float> xhat = c <= 4096 ? stackalloc float[c] : new float[c];
        for (int row = 0; row < n; row++)
        {
            TensorPrimitives.Multiply(x.Slice(row * c, c), rstd[row], xhat);
            TensorPrimitives.MultiplyAdd(dy.Slice(row * c, c), xhat, dw, dw);
        }
    }
}
