namespace Raft.Benchmarks.Distill;

/// <summary>
/// Shapes and inputs of the distillation-loss suite. The full suite is rows = 2,048,
/// V ∈ {32,000; 151,936}, K ∈ {16; 64; 256}, τ = 2. <see cref="Small"/> (command-line <c>--small</c> or
/// environment <c>RAFT_BENCH_SMALL=1</c>) shrinks every shape for smoke tests.
/// </summary>
public static class DistillShapes
{
    /// <summary>Smoke-test shapes instead of the real ones.</summary>
    public static bool Small { get; set; } = Environment.GetEnvironmentVariable("RAFT_BENCH_SMALL") == "1";

    /// <summary>The temperature τ used by every method.</summary>
    public const float Temperature = 2f;

    /// <summary>Overrides <see cref="Rows"/> when &gt; 0 (command-line <c>--rows N</c>): for quick scaled-down checks.</summary>
    public static int RowsOverride { get; set; }

    /// <summary>Rows (token positions) per call.</summary>
    public static int Rows => RowsOverride > 0 ? RowsOverride : Small ? 64 : 2048;

    /// <summary>True for the real suite's shapes (neither <see cref="Small"/> nor a different row count).</summary>
    public static bool IsFullSize => !Small && Rows == 2048;

    /// <summary>Vocabulary sizes: Llama-2 (32,000) and Qwen2 (151,936).</summary>
    public static int[] Vocabs => Small ? [1000, 4096] : [32_000, 151_936];

    /// <summary>Teacher top-K sizes.</summary>
    public static int[] TopKs => [16, 64, 256];

    /// <summary>Bytes a call must move at least: the student read once and the gradient written once.</summary>
    public static double BytesPerCall(int rows, int vocab) => 2.0 * rows * vocab * sizeof(float);
}

/// <summary>
/// One problem instance: student logits [rows, V] in a pinned array (ONNX Runtime and libtorch read it
/// without a copy) and the teacher's top-K [rows, K] (indices as int and int64, probabilities).
/// The teacher is synthetic: K distinct random indices per row with logits drawn in [0, 10) and sorted
/// descending, softmaxed at τ, so every probability is > 0 (log p is finite in every method) and each row
/// sums to 1. Everything is seeded, so every method and every process sees the same numbers.
/// </summary>
public sealed class DistillProblem
{
    /// <summary>Rows, vocabulary and K.</summary>
    public int Rows { get; }
    /// <inheritdoc cref="Rows"/>
    public int Vocab { get; }
    /// <inheritdoc cref="Rows"/>
    public int TopK { get; }
    /// <summary>τ.</summary>
    public float Temperature { get; }

    /// <summary>Student logits [rows, V], pinned (pinned object heap).</summary>
    public float[] Student { get; }
    /// <summary>Teacher top-K indices [rows, K].</summary>
    public int[] Indices { get; }
    /// <summary>The same indices as int64 [rows, K] (ONNX GatherElements/ScatterElements, torch.gather).</summary>
    public long[] Indices64 { get; }
    /// <summary>Teacher top-K probabilities [rows, K].</summary>
    public float[] Probs { get; }

    /// <summary>Allocates and fills an instance.</summary>
    public DistillProblem(int rows, int vocab, int topK, float temperature, int seed = 12345)
    {
        Rows = rows; Vocab = vocab; TopK = topK; Temperature = temperature;
        Student = GC.AllocateUninitializedArray<float>(checked(rows * vocab), pinned: true);
        FillLogits(Student, rows, vocab, seed);
        Indices = new int[rows * topK];
        Indices64 = new long[rows * topK];
        Probs = new float[rows * topK];
        var rng = new Random(seed ^ 0x5bd1e995);
        var t = new double[topK];
        var seen = new HashSet<int>();
        for (int r = 0; r < rows; r++)
        {
            seen.Clear();
            for (int j = 0; j < topK; j++)
            {
                int i;
                do i = rng.Next(vocab); while (!seen.Add(i));
                Indices[r * topK + j] = i;
                Indices64[r * topK + j] = i;
                t[j] = rng.NextDouble() * 10.0;
            }
            Array.Sort(t);
            Array.Reverse(t);
            double sum = 0;
            for (int j = 0; j < topK; j++) sum += t[j] = Math.Exp((t[j] - t[0]) / temperature);
            for (int j = 0; j < topK; j++) Probs[r * topK + j] = (float)(t[j] / sum);
        }
    }

    /// <summary>
    /// Fills [rows, V] with roughly normal logits (mean 0, sd ≈ 3: a sum of four uniforms), one
    /// xorshift stream per row, in parallel; also touches every page so no timed call pays first-touch faults.
    /// </summary>
    public static void FillLogits(float[] a, int rows, int vocab, int seed)
    {
        Parallel.For(0, rows, r =>
        {
            ulong x = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)r * 0xD1B54A32D192ED03UL + 1;
            var row = a.AsSpan(r * vocab, vocab);
            for (int i = 0; i < row.Length; i++)
            {
                float u = 0;
                for (int n = 0; n < 4; n++)
                {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    u += (x >> 40) * (1f / (1 << 24));
                }
                row[i] = (u - 2f) * 5.2f; // sd of a sum of 4 U(0,1) is 0.577 → ≈ 3
            }
        });
    }

    /// <summary>A pinned array of the student's size, every page touched.</summary>
    public float[] NewTouchedBuffer()
    {
        var b = GC.AllocateUninitializedArray<float>(Student.Length, pinned: true);
        Parallel.For(0, Rows, r => b.AsSpan(r * Vocab, Vocab).Clear());
        return b;
    }
}
