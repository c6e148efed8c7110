namespace Raft.Model.Ops;

/// <summary>
/// Rotary position embedding in Hugging Face's rotate_half convention: a head vector x of width d is split
/// into halves x₁ = x[0:d/2], x₂ = x[d/2:d]; with θ_i = pos · inv_freq_i, inv_freq_i = base^(−2i/d),
/// out₁ = x₁ cos θ − x₂ sin θ, out₂ = x₂ cos θ + x₁ sin θ. The angle is formed in fp32 as transformers does
/// (inv_freq in fp32, times the position as fp32). With a scaled rope (<see cref="RotaryEmbedding"/>) the inverse
/// frequencies are the variant's and cos, sin are multiplied by its attention scaling (yarn). The backward applies the
/// transposed rotation (with the same scaling: the op is linear).
/// </summary>
internal sealed class RopeTable
{
    private readonly float[] _invFreq;
    private readonly float _scale;
    private float[] _cos = [], _sin = [];
    private int _positions;

    /// <summary>A table for head width headDim and base θ; grows on demand.</summary>
    public RopeTable(int headDim, double theta)
    {
        HeadDim = headDim;
        Half = headDim / 2;
        _invFreq = new float[Half];
        _scale = 1f;
        for (int i = 0; i < Half; i++)
            _invFreq[i] = 1f / MathF.Pow((float)theta, (float)(2 * i) / headDim);
    }

    /// <summary>A table of <paramref name="rope"/>'s fp32 frequencies for tables of length <paramref name="tableLength"/>.</summary>
    public RopeTable(RotaryEmbedding rope, int tableLength)
    {
        HeadDim = rope.HeadDim;
        Half = HeadDim / 2;
        _invFreq = rope.InverseFrequenciesF32(tableLength);
        _scale = (float)rope.AttentionScaling;
    }

    /// <summary>The head width.</summary>
    public int HeadDim { get; }
    /// <summary>Half the head width.</summary>
    public int Half { get; }

    private readonly Lock _gate = new();

    /// <summary>Makes sure positions 0..count-1 are tabulated.</summary>
    public void Ensure(int count)
    {
        if (count <= _positions) return;
        lock (_gate)
        {
            if (count <= _positions) return;
            int cap = Math.Max(count, Math.Max(64, _positions * 2));
            var cos = new float[cap * Half];
            var sin = new float[cap * Half];
            for (int p = 0; p < cap; p++)
                for (int i = 0; i < Half; i++)
                {
                    float a = (float)p * _invFreq[i];
                    cos[p * Half + i] = _scale == 1f ? MathF.Cos(a) : MathF.Cos(a) * _scale;
                    sin[p * Half + i] = _scale == 1f ? MathF.Sin(a) : MathF.Sin(a) * _scale;
                }
            _cos = cos; _sin = sin; _positions = cap;
        }
    }

    /// <summary>
    /// Rotates every head of every row in place; inverse = true applies the transposed rotation (the backward).
    /// </summary>
    public unsafe void Apply(Span<float> x, ReadOnlySpan<int> positions, int rows, int heads, bool inverse, int threads)
    {
        // x: [N, heads * head_dim]   positions: [N]
        int max = 0;
        for (int r = 0; r < rows; r++)
        {
            if (positions[r] < 0) throw new ArgumentOutOfRangeException(nameof(positions), positions[r], $"position at index {r} is negative.");
            max = Math.Max(max, positions[r]);
        }
        Ensure(max + 1);
        float[] cosT = _cos, sinT = _sin;
        int half = Half, width = heads * HeadDim;
        float sign = inverse ? -1f : 1f;
        fixed (float* px = x)
        fixed (int* pp = positions)
        {
            nint ax = (nint)px, ap = (nint)pp;
            int chunk = Par.ChunkSize(rows, Par.Resolve(threads) * 4, 16);
            Par.For((rows + chunk - 1) / chunk, rows * (long)width > 1 << 15 ? threads : 1, ci =>
            {
                for (int r = ci * chunk; r < Math.Min(rows, (ci + 1) * chunk); r++)
                {
                    int pos = ((int*)ap)[r];
                    float* row = (float*)ax + (long)r * width;
                    for (int h = 0; h < heads; h++)
                    {
                        float* v = row + h * HeadDim;
                        for (int i = 0; i < half; i++)
                        {
                            float c = cosT[pos * half + i], s = sign * sinT[pos * half + i];
                            float x1 = v[i], x2 = v[i + half];
                            v[i] = x1 * c - x2 * s;
                            v[i + half] = x2 * c + x1 * s;
                        }
                    }
                }
            });
        }
    }
}
