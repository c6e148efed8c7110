using System.Diagnostics;
using Raft.Model;

namespace Raft.DecodeBench;

/// <summary>
/// The benchmark's models: Qwen2.5-0.5B-Instruct's shapes (24 layers, hidden 896, intermediate 4864, 14 heads over 2 KV
/// heads, vocab 151,936, q/k/v biases, tied embeddings) with random weights made here (uniform ±0.04 matrices, unit
/// norms, zero biases; a fixed seed per tensor). The matrices are rounded to BF16 once; the fp32 model holds their exact
/// widening, so both models compute with the same weights and differ only in how they are stored and read.
/// </summary>
internal static class DecodeModels
{
    public static int Layers = 24;

    public static ModelConfig Config() => new()
    {
        ModelType = "qwen2", HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = Layers, NumAttentionHeads = 14,
        NumKeyValueHeads = 2, VocabSize = 151936, RmsNormEps = 1e-6, RopeTheta = 1_000_000, MaxPositionEmbeddings = 32768,
        TieWordEmbeddings = true, AttentionBias = true,
    };

    /// <summary>Bytes of weights one decode step reads: every matrix once (lm_head = the tied embedding), at the given bytes per value; plus the fp32 norms and biases.</summary>
    public static long WeightBytesPerStep(ModelConfig c, int bytesPerMatrixValue)
    {
        long matrices = 0, small = 0;
        var layout = DecoderLayout.For(c);
        foreach (var t in layout.Tensors)
        {
            long n = t.Shape.Aggregate(1L, (a, b) => a * b);
            if (t.Role == TensorRole.Matrix) matrices += n;   // the embedding's lookup reads one row; as lm_head it is read whole
            else small += n;
        }
        return matrices * bytesPerMatrixValue + small * 4;
    }

    /// <summary>Builds the model with matrices in <paramref name="dtype"/> (F32 = the widened BF16 values, or BF16).</summary>
    public static LlamaModel Build(SafeTensorDType dtype, int threads)
    {
        var c = Config();
        var small = new TensorSet();
        var halves = new List<HalfMatrix>();
        var sw = Stopwatch.StartNew();
        int index = 0;
        foreach (var spec in DecoderLayout.For(c).Tensors)
        {
            int seed = ++index;
            var t = spec.Role == TensorRole.Matrix && dtype == SafeTensorDType.BF16 ? null! : Tensor.Zeros(spec.Name, spec.Shape.ToArray());
            if (spec.Role == TensorRole.NormWeight) t.Data.AsSpan().Fill(1f);
            else if (spec.Role == TensorRole.Matrix)
            {
                var bits = new ushort[spec.Shape.ToArray().Aggregate(1, (a, b) => a * b)];
                Fill(bits, seed);
                if (dtype == SafeTensorDType.BF16) { halves.Add(new HalfMatrix(spec.Name, spec.Shape.ToArray(), bits, SafeTensorDType.BF16)); continue; }
                SafeTensorDTypes.BFloat16ToSingle(bits, t.Data);
            }
            small.Add(t);
        }
        var model = new LlamaModel(c, small, halves) { Threads = threads };
        Console.Error.WriteLine($"// built the {dtype} model ({c.NumHiddenLayers} layers) in {sw.Elapsed.TotalSeconds:F1} s");
        return model;
    }

    /// <summary>Uniform ±0.04 values rounded to BF16 (nearest even), chunk-seeded so the result does not depend on threads.</summary>
    private static void Fill(ushort[] data, int seed)
    {
        const int Chunk = 1 << 20;
        int chunks = (data.Length + Chunk - 1) / Chunk;
        Parallel.For(0, chunks, ch =>
        {
            ulong s = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)ch * 0xD1B54A32D192ED03UL + 1;
            int end = Math.Min(data.Length, (ch + 1) * Chunk);
            for (int i = ch * Chunk; i < end; i++)
            {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;   // xorshift64
                data[i] = SafeTensorDTypes.SingleToBFloat16((float)((s >> 40) * (1.0 / (1UL << 24)) * 0.08 - 0.04));
            }
        });
    }

    /// <summary>This process's peak resident set (VmHWM, bytes), or -1 where /proc is absent.</summary>
    public static long PeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        return -1;
    }
}
