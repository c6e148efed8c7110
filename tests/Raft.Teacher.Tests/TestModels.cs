using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher.Tests;

internal static class TestModels
{
    /// <summary>2 layers, 4 query heads over 2 KV heads, hidden 16, head_dim 4, intermediate 24, vocab 11.</summary>
    public static ModelConfig Tiny(bool tied, bool bias, int vocab = 11) => new()
    {
        ModelType = bias ? "qwen2" : "llama",
        HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = vocab, RmsNormEps = 1e-6, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
        MaxPositionEmbeddings = 64,
    };

    public static TeacherOptions Cpu(List<string>? log = null) => new() { Provider = ComputeDevice.Cpu, IntraOpThreads = 2, Log = l => log?.Add(l) };

    /// <summary>
    /// Exports <paramref name="config"/> with <paramref name="weights"/>, prefills <paramref name="prompt"/> tokens of
    /// <paramref name="batch"/> random sequences of <paramref name="seq"/> through the KV cache, then decodes the rest one
    /// position at a time, and asserts that every position's logits equal the engine's full forward (relative error
    /// &lt; 1e-4) and that the cache holds the positions fed.
    /// </summary>
    public static void AssertKvDecodeEqualsFullForward(ModelConfig config, TensorSet weights, int batch, int seq, int prompt, string label)
    {
        int[] tokens = RandomTokens(batch * seq, config.VocabSize, seed: 8);
        float[] full = new LlamaModel(config, weights).Forward(tokens, batch, seq);
        int v = config.VocabSize;
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        using var cache = teacher.CreateCache(batch);
        long[] Slice(int from, int count) =>
            Enumerable.Range(0, batch).SelectMany(b => tokens.Skip(b * seq + from).Take(count)).Select(t => (long)t).ToArray();
        void Check(ReadOnlySpan<float> got, int b, int position)
        {
            double e = Tolerances.MaxRelErrorFp32(got, full.AsSpan((b * seq + position) * v, v));
            Assert.True(e < 1e-4, $"{label}: sequence {b}, position {position}: relative error {e}");
        }
        float[] pre = teacher.Forward(Slice(0, prompt), batch, prompt, cache);
        Assert.Equal(prompt, cache.Length);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < prompt; i++) Check(pre.AsSpan((b * prompt + i) * v, v), b, i);
        for (int step = prompt; step < seq; step++)
        {
            float[] one = teacher.Forward(Slice(step, 1), batch, 1, cache);
            Assert.Equal(step + 1, cache.Length);
            for (int b = 0; b < batch; b++) Check(one.AsSpan(b * v, v), b, step);
        }
    }
}
