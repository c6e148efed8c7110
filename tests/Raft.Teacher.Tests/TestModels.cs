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
}
