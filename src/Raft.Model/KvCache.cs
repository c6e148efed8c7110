namespace Raft.Model;

/// <summary>
/// Keys and values of every layer for a batch of sequences decoded together, after RoPE:
/// per layer [B, KV heads, capacity, head_dim]. All sequences share one length (prompts of equal length,
/// right-padded if need be). Created by <see cref="LlamaModel.CreateKvCache"/>.
/// </summary>
public sealed class KvCache
{
    internal KvCache(ModelConfig config, int batch, int capacity)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be > 0.");
        Batch = batch;
        Capacity = capacity;
        KvHeads = config.KvHeads;
        HeadDim = config.HeadDim;
        long per = (long)batch * KvHeads * capacity * HeadDim;
        if (per > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "the cache is too large for one array per layer.");
        Keys = new float[config.NumHiddenLayers][];
        Values = new float[config.NumHiddenLayers][];
        for (int l = 0; l < Keys.Length; l++)
        {
            Keys[l] = new float[per];
            Values[l] = new float[per];
        }
    }

    /// <summary>Sequences in the batch.</summary>
    public int Batch { get; }
    /// <summary>The most positions the cache holds.</summary>
    public int Capacity { get; }
    /// <summary>Positions filled so far (the same for every sequence).</summary>
    public int Length { get; internal set; }
    internal int KvHeads { get; }
    internal int HeadDim { get; }
    internal float[][] Keys { get; }
    internal float[][] Values { get; }

    /// <summary>Forgets the cached positions (the buffers are kept for the next prompt).</summary>
    public void Reset() => Length = 0;

    internal Ops.KvLayout Layout => new((long)KvHeads * Capacity * HeadDim, (long)Capacity * HeadDim, HeadDim);

    /// <summary>Copies t new rows of keys/values [B·t, KV·hd] of layer l into positions Length..Length+t-1.</summary>
    internal void Write(int layer, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int t)
    {
        int kvWidth = KvHeads * HeadDim;
        var layout = Layout;
        for (int b = 0; b < Batch; b++)
            for (int i = 0; i < t; i++)
                for (int h = 0; h < KvHeads; h++)
                {
                    int src = (b * t + i) * kvWidth + h * HeadDim;
                    long dst = b * layout.SeqStride + h * layout.HeadStride + (Length + i) * layout.PosStride;
                    k.Slice(src, HeadDim).CopyTo(Keys[layer].AsSpan((int)dst, HeadDim));
                    v.Slice(src, HeadDim).CopyTo(Values[layer].AsSpan((int)dst, HeadDim));
                }
    }
}
