using LLama;
using LLama.Common;
using LLama.Native;

namespace Raft.DecodeBench;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0's CPU libllama.so, <c>threads</c> threads, fp32 KV cache, no flash attention) decoding
/// the engine's GGUF export: B sequences in one context (one <c>llama_decode</c> of B tokens per step, each at its own
/// position in its own sequence), as llama.cpp's batched decoding does.
/// </summary>
internal sealed class LlamaCppDecoder : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly int _batch;
    private int _pos;

    public LlamaCppDecoder(string gguf, int batch, int capacity, int threads)
    {
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)(batch * capacity), BatchSize = (uint)Math.Max(batch * 16, 32), UBatchSize = (uint)Math.Max(batch * 16, 32),
            SeqMax = (uint)batch, Threads = threads, BatchThreads = threads, GpuLayerCount = 0,
            TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
        _batch = batch;
    }

    public int Position => _pos;

    public void Reset() { _context.NativeHandle.MemoryClear(true); _pos = 0; }

    /// <summary>t tokens per sequence ([B·t], sequence-major) after the cache; logits of each sequence's last token.</summary>
    public void Step(int[] tokens, int t)
    {
        var batch = new LLamaBatch();
        for (int b = 0; b < _batch; b++)
            for (int j = 0; j < t; j++)
                batch.Add((LLamaToken)tokens[b * t + j], _pos + j, (LLamaSeqId)b, logits: j == t - 1);
        var r = _context.NativeHandle.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode returned {r}.");
        _pos += t;
    }

    /// <summary>Logits [B, V] of the last step's outputs (validation).</summary>
    public float[] LastLogits(int vocab)
    {
        var all = new float[_batch * vocab];
        for (int b = 0; b < _batch; b++) _context.NativeHandle.GetLogitsIth(b).CopyTo(all.AsSpan(b * vocab, vocab));
        return all;
    }

    public void Dispose() { _context.Dispose(); _weights.Dispose(); }
}
