namespace Raft.Model;

/// <summary>
/// What a training forward of <see cref="LlamaModel"/> keeps for its backward (per layer: the block inputs,
/// the normalized inputs and their inverse RMS, q/k/v after RoPE, the attention output and its log-sum-exp,
/// the MLP's gate, up and product). Reusable: a later forward of the same or a smaller shape reuses the buffers.
/// </summary>
public sealed class ModelActivations
{
    /// <summary>Batch size of the recorded forward.</summary>
    public int Batch { get; internal set; }
    /// <summary>Sequence length of the recorded forward.</summary>
    public int SeqLen { get; internal set; }
    /// <summary>True once a forward has filled the record.</summary>
    public bool IsFilled { get; internal set; }

    internal int[] Tokens = [];
    internal int[] Positions = [];
    internal LayerBuffers[] Layers = [];
    internal float[] XFinal = [];   // [N, C] input of the final norm
    internal float[] RstdF = [];    // [N]
    internal float[] XnF = [];      // [N, C] input of lm_head
    internal object? Owner;
    internal LayerBuffers Work = new();   // gradient checkpointing: the one layer's buffers the forward and the recomputation use
    private bool _checkpointedLayers;

    /// <summary>
    /// Gradient checkpointing (Hugging Face's <c>gradient_checkpointing</c>): the forward keeps only each layer's input
    /// [N, C] and one layer's working buffers; the backward recomputes each layer's forward from its input before its
    /// backward. The gradients are the same, bit for bit (the same ops on the same values); memory for activations drops
    /// from ~(6·C + 3·F) to C floats per row and layer, for one more forward of the layers.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Whether the filled record was made with <see cref="GradientCheckpointing"/>.</summary>
    internal bool Checkpointed { get; private set; }

    /// <summary>The recorded forward's normalized final hidden rows [B·T, C] (lm_head's input).</summary>
    public ReadOnlySpan<float> Hidden => IsFilled ? XnF.AsSpan(0, Batch * SeqLen * _hiddenSize) : default;
    private int _hiddenSize;
    internal LoraRecord? Lora;       // the adapter paths of the recorded forward (null or not Enabled: none ran)

    internal void Ensure(ModelConfig c, int n, int batch, int t, object owner)
    {
        if (Layers.Length != c.NumHiddenLayers || !ReferenceEquals(Owner, owner) || _checkpointedLayers != GradientCheckpointing)
        {
            _checkpointedLayers = GradientCheckpointing;
            Work = new LayerBuffers();
            Layers = new LayerBuffers[c.NumHiddenLayers];
            for (int l = 0; l < Layers.Length; l++) Layers[l] = new LayerBuffers();
            Owner = owner;
        }
        Checkpointed = GradientCheckpointing;
        _hiddenSize = c.HiddenSize;
        if (Checkpointed)
        {
            foreach (var l in Layers) Buf.Ensure(ref l.XIn, (long)n * c.HiddenSize);
            Work.Ensure(c, n, batch * t, true);
        }
        else foreach (var l in Layers) l.Ensure(c, n, batch * t, true);
        Buf.Ensure(ref XFinal, (long)n * c.HiddenSize);
        Buf.Ensure(ref RstdF, n);
        Buf.Ensure(ref XnF, (long)n * c.HiddenSize);
    }
}

/// <summary>Buffers of one decoder layer (N = B·T rows).</summary>
internal sealed class LayerBuffers
{
    public float[] XIn = [];    // [N, C] block input (training only)
    public float[] Rstd1 = [];  // [N]
    public float[] Xn1 = [];    // [N, C]
    public float[] Q = [];      // [N, H·hd] after RoPE
    public float[] K = [];      // [N, KV·hd] after RoPE
    public float[] V = [];      // [N, KV·hd]
    public float[] Att = [];    // [N, H·hd]
    public float[] Lse = [];    // [B, H, T]
    public float[] XMid = [];   // [N, C] after the attention residual (training only)
    public float[] Rstd2 = [];  // [N]
    public float[] Xn2 = [];    // [N, C]
    public float[] G = [];      // [N, F]
    public float[] U = [];      // [N, F]
    public float[] Hh = [];     // [N, F]
    public float[] QRaw = [];   // [N, H·hd] q before the per-head norm (Qwen3 only)
    public float[] KRaw = [];   // [N, KV·hd]
    public float[] QRstd = [];  // [N·H]
    public float[] KRstd = [];  // [N·KV]

    public void Ensure(ModelConfig c, int n, int bt, bool training)
    {
        long d = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.KvHeads * c.HeadDim, f = c.IntermediateSize;
        if (training) { Buf.Ensure(ref XIn, n * d); Buf.Ensure(ref XMid, n * d); }
        Buf.Ensure(ref Rstd1, n); Buf.Ensure(ref Rstd2, n);
        Buf.Ensure(ref Xn1, n * d); Buf.Ensure(ref Xn2, n * d);
        Buf.Ensure(ref Q, n * q); Buf.Ensure(ref Att, n * q);
        Buf.Ensure(ref K, n * kv); Buf.Ensure(ref V, n * kv);
        Buf.Ensure(ref Lse, (long)c.NumAttentionHeads * bt);
        Buf.Ensure(ref G, n * f); Buf.Ensure(ref U, n * f); Buf.Ensure(ref Hh, n * f);
        if (c.QkNorm)
        {
            Buf.Ensure(ref QRaw, n * q); Buf.Ensure(ref KRaw, n * kv);
            Buf.Ensure(ref QRstd, (long)n * c.NumAttentionHeads); Buf.Ensure(ref KRstd, (long)n * c.KvHeads);
        }
    }
}

internal static class Buf
{
    /// <summary>Grows a buffer to at least len values (contents are not kept).</summary>
    public static void Ensure(ref float[] a, long len)
    {
        if (a.Length < len) a = new float[len];
    }
}
