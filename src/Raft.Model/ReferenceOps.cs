namespace Raft.Model;

/// <summary>
/// The specification of every op of the decoder, in double precision with plain loops (the llm.c manner):
/// each forward beside its backward. Backward functions ACCUMULATE into the gradient arrays they are given.
/// The fast ops under Raft.Model.Ops are tested against these, and these against finite differences.
/// </summary>
public static class ReferenceOps
{
    /// <summary>y[N, out] = x[N, in] · W[out, in]ᵀ + b[out] (b may be null).</summary>
    public static double[] Linear(double[] x, double[] w, double[]? b, int n, int inDim, int outDim)
    {
        // x: [N, in]   w: [out, in]   b: [out]   → y: [N, out]
        var y = new double[n * outDim];
        for (int r = 0; r < n; r++)
            for (int o = 0; o < outDim; o++)
            {
                double s = b?[o] ?? 0.0;
                for (int i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
                y[r * outDim + o] = s;
            }
        return y;
    }

    /// <summary>dx += dy · W, dW += dyᵀ · x, db += Σ_rows dy (any of dx, dw, db may be null).</summary>
    public static void LinearBackward(double[] dy, double[] x, double[] w, double[]? dx, double[]? dw, double[]? db,
        int n, int inDim, int outDim)
    {
        // dy: [N, out]   x: [N, in]   w: [out, in]
        for (int r = 0; r < n; r++)
            for (int o = 0; o < outDim; o++)
            {
                double g = dy[r * outDim + o];
                if (db != null) db[o] += g;
                for (int i = 0; i < inDim; i++)
                {
                    if (dx != null) dx[r * inDim + i] += g * w[o * inDim + i];
                    if (dw != null) dw[o * inDim + i] += g * x[r * inDim + i];
                }
            }
    }

    /// <summary>x[N, C] = table[token[n]].</summary>
    public static double[] Embedding(int[] tokens, double[] table, int c)
    {
        var x = new double[tokens.Length * c];
        for (int n = 0; n < tokens.Length; n++)
            for (int i = 0; i < c; i++) x[n * c + i] = table[tokens[n] * c + i];
        return x;
    }

    /// <summary>dTable[token[n]] += dx[n].</summary>
    public static void EmbeddingBackward(int[] tokens, double[] dx, double[] dTable, int c)
    {
        for (int n = 0; n < tokens.Length; n++)
            for (int i = 0; i < c; i++) dTable[tokens[n] * c + i] += dx[n * c + i];
    }

    /// <summary>y = w ⊙ x / sqrt(mean(x²) + ε), row by row.</summary>
    public static double[] RmsNorm(double[] x, double[] w, int n, int c, double eps)
    {
        // x: [N, C]   w: [C]   → y: [N, C]
        var y = new double[n * c];
        for (int r = 0; r < n; r++)
        {
            double ms = 0;
            for (int i = 0; i < c; i++) ms += x[r * c + i] * x[r * c + i];
            double rs = 1.0 / Math.Sqrt(ms / c + eps);
            for (int i = 0; i < c; i++) y[r * c + i] = w[i] * x[r * c + i] * rs;
        }
        return y;
    }

    /// <summary>dx += ∂L/∂x, dw += ∂L/∂w of <see cref="RmsNorm"/>.</summary>
    public static void RmsNormBackward(double[] dy, double[] x, double[] w, double[] dx, double[] dw, int n, int c, double eps)
    {
        for (int r = 0; r < n; r++)
        {
            double ms = 0;
            for (int i = 0; i < c; i++) ms += x[r * c + i] * x[r * c + i];
            double rs = 1.0 / Math.Sqrt(ms / c + eps);
            // y_i = w_i x_i rs;  ∂rs/∂x_j = −rs³ x_j / C
            double s = 0;
            for (int i = 0; i < c; i++) s += dy[r * c + i] * w[i] * x[r * c + i];
            for (int i = 0; i < c; i++)
            {
                dw[i] += dy[r * c + i] * x[r * c + i] * rs;
                dx[r * c + i] += dy[r * c + i] * w[i] * rs - x[r * c + i] * rs * rs * rs * s / c;
            }
        }
    }

    /// <summary>
    /// RoPE, rotate_half convention: per head of width d, x₁ = x[0:d/2], x₂ = x[d/2:d], angle_i = pos·θ^(−2i/d),
    /// out₁ = x₁ cos − x₂ sin, out₂ = x₂ cos + x₁ sin. inverse = true applies the transposed rotation (the backward).
    /// </summary>
    public static double[] Rope(double[] x, int[] positions, int n, int heads, int headDim, double theta, bool inverse = false)
    {
        var inv = new double[headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = Math.Pow(theta, -2.0 * i / headDim);
        return Rope(x, positions, n, heads, headDim, inv, 1.0, inverse);
    }

    /// <summary>
    /// RoPE with given inverse frequencies [head_dim / 2] and a factor on cos and sin (yarn's attention scaling; 1 for the
    /// other variants): angle_i = pos·invFreq_i, out₁ = m(x₁ cos − x₂ sin), out₂ = m(x₂ cos + x₁ sin). inverse = true applies
    /// the transposed map (the backward).
    /// </summary>
    public static double[] Rope(double[] x, int[] positions, int n, int heads, int headDim, double[] invFreq, double scale, bool inverse = false)
    {
        // x: [N, heads·hd]   positions: [N]   → same shape
        var y = new double[x.Length];
        int half = headDim / 2, width = heads * headDim;
        for (int r = 0; r < n; r++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++)
                {
                    double a = positions[r] * invFreq[i];
                    double c = scale * Math.Cos(a), s = scale * (inverse ? -Math.Sin(a) : Math.Sin(a));
                    int o = r * width + h * headDim;
                    double x1 = x[o + i], x2 = x[o + i + half];
                    y[o + i] = x1 * c - x2 * s;
                    y[o + i + half] = x2 * c + x1 * s;
                }
        return y;
    }

    /// <summary>
    /// Causal grouped-query attention: q [B·T, H·hd], k, v [B·T, KV·hd] → out [B·T, H·hd]; query head h reads
    /// kv head h / (H/KV); scores scaled by 1/sqrt(hd); query t sees keys 0..t.
    /// </summary>
    public static double[] Attention(double[] q, double[] k, double[] v, int batch, int t, int heads, int kvHeads, int headDim)
        => Attention(q, k, v, batch, t, heads, kvHeads, headDim, window: 0);

    /// <summary>
    /// <see cref="Attention(double[], double[], double[], int, int, int, int, int)"/> with a sliding window: query i sees
    /// keys s with s ≤ i and i − s &lt; <paramref name="window"/> (0: no window).
    /// </summary>
    public static double[] Attention(double[] q, double[] k, double[] v, int batch, int t, int heads, int kvHeads, int headDim, int window)
    {
        var o = new double[q.Length];
        int group = heads / kvHeads, qw = heads * headDim, kw = kvHeads * headDim;
        double scale = 1.0 / Math.Sqrt(headDim);
        var p = new double[t];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int kh = h / group;
                for (int i = 0; i < t; i++)
                {
                    Probabilities(q, k, b, h, kh, i, t, qw, kw, headDim, scale, p, window);
                    for (int s = First(i, window); s <= i; s++)
                        for (int d = 0; d < headDim; d++)
                            o[(b * t + i) * qw + h * headDim + d] += p[s] * v[(b * t + s) * kw + kh * headDim + d];
                }
            }
        return o;
    }

    /// <summary>The first key query i sees: 0, or i − window + 1 with a window.</summary>
    private static int First(int i, int window) => window > 0 ? Math.Max(0, i - window + 1) : 0;

    private static void Probabilities(double[] q, double[] k, int b, int h, int kh, int i, int t, int qw, int kw, int hd,
        double scale, double[] p, int window)
    {
        double max = double.NegativeInfinity;
        int first = First(i, window);
        for (int s = first; s <= i; s++)
        {
            double sc = 0;
            for (int d = 0; d < hd; d++) sc += q[(b * t + i) * qw + h * hd + d] * k[(b * t + s) * kw + kh * hd + d];
            p[s] = sc * scale;
            max = Math.Max(max, p[s]);
        }
        double sum = 0;
        for (int s = first; s <= i; s++) { p[s] = Math.Exp(p[s] - max); sum += p[s]; }
        for (int s = first; s <= i; s++) p[s] /= sum;
    }

    /// <summary>dq, dk, dv += the gradients of <see cref="Attention(double[], double[], double[], int, int, int, int, int)"/>.</summary>
    public static void AttentionBackward(double[] dout, double[] q, double[] k, double[] v, double[] dq, double[] dk, double[] dv,
        int batch, int t, int heads, int kvHeads, int headDim)
        => AttentionBackward(dout, q, k, v, dq, dk, dv, batch, t, heads, kvHeads, headDim, window: 0);

    /// <summary>dq, dk, dv += the gradients of the windowed <see cref="Attention(double[], double[], double[], int, int, int, int, int, int)"/>.</summary>
    public static void AttentionBackward(double[] dout, double[] q, double[] k, double[] v, double[] dq, double[] dk, double[] dv,
        int batch, int t, int heads, int kvHeads, int headDim, int window)
    {
        int group = heads / kvHeads, qw = heads * headDim, kw = kvHeads * headDim;
        double scale = 1.0 / Math.Sqrt(headDim);
        var p = new double[t];
        var dp = new double[t];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int kh = h / group;
                for (int i = 0; i < t; i++)
                {
                    Probabilities(q, k, b, h, kh, i, t, qw, kw, headDim, scale, p, window);
                    int qo = (b * t + i) * qw + h * headDim, first = First(i, window);
                    double dot = 0;  // Σ_s p_s dp_s
                    for (int s = first; s <= i; s++)
                    {
                        int ko = (b * t + s) * kw + kh * headDim;
                        dp[s] = 0;
                        for (int d = 0; d < headDim; d++)
                        {
                            dp[s] += dout[qo + d] * v[ko + d];
                            dv[ko + d] += p[s] * dout[qo + d];
                        }
                        dot += p[s] * dp[s];
                    }
                    for (int s = first; s <= i; s++)
                    {
                        int ko = (b * t + s) * kw + kh * headDim;
                        double ds = p[s] * (dp[s] - dot) * scale;
                        for (int d = 0; d < headDim; d++)
                        {
                            dq[qo + d] += ds * k[ko + d];
                            dk[ko + d] += ds * q[qo + d];
                        }
                    }
                }
            }
    }

    /// <summary>h = silu(g) ⊙ u, silu(g) = g / (1 + e^−g).</summary>
    public static double[] SwiGlu(double[] g, double[] u)
    {
        var h = new double[g.Length];
        for (int i = 0; i < g.Length; i++) h[i] = g[i] / (1 + Math.Exp(-g[i])) * u[i];
        return h;
    }

    /// <summary>dg, du += the gradients of <see cref="SwiGlu"/>.</summary>
    public static void SwiGluBackward(double[] dh, double[] g, double[] u, double[] dg, double[] du)
    {
        for (int i = 0; i < g.Length; i++)
        {
            double s = 1 / (1 + Math.Exp(-g[i]));
            du[i] += dh[i] * g[i] * s;
            dg[i] += dh[i] * u[i] * s * (1 + g[i] * (1 - s));
        }
    }

    /// <summary>a + b, elementwise (the residual add; its backward passes the gradient to both).</summary>
    public static double[] Add(double[] a, double[] b)
    {
        var y = new double[a.Length];
        for (int i = 0; i < a.Length; i++) y[i] = a[i] + b[i];
        return y;
    }
}
