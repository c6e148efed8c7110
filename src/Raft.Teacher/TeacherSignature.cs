using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Raft.Teacher;

/// <summary>What one graph input of a decoder is for.</summary>
public enum TeacherInputRole
{
    /// <summary>Token ids [batch, seq] int64.</summary>
    InputIds,
    /// <summary>[batch, past+seq] int64, 1 for positions to attend.</summary>
    AttentionMask,
    /// <summary>[batch, seq] int64.</summary>
    PositionIds,
    /// <summary>Optimum's merged decoder: bool [1] (or scalar), true when the past is used.</summary>
    UseCacheBranch,
    /// <summary>GroupQueryAttention: int32 [batch], each row's total length − 1.</summary>
    SeqlensK,
    /// <summary>GroupQueryAttention: int32 scalar, past + seq.</summary>
    TotalSequenceLength,
    /// <summary>A layer's past key or value.</summary>
    Past,
}

/// <summary>
/// The signature of a causal-LM decoder graph as read from its inputs and outputs (names, element types, ranks):
/// which optional inputs exist (<c>attention_mask</c>, <c>position_ids</c>, Optimum's merged-decoder
/// <c>use_cache_branch</c>, GroupQueryAttention's <c>seqlens_k</c> and <c>total_sequence_length</c>), the KV cache's
/// names, layout ([batch, kv_heads, past, head_dim], BNSH) and element type (float, float16 or bfloat16) and the
/// logits' element type. Covers the engine's own export, Optimum's <c>text-generation-with-past</c> exports (with or
/// without position_ids; the legacy <c>decoder_model_merged.onnx</c>) and ONNX Runtime GenAI model-builder exports.
/// A graph with an input or output that fits none of these is refused, naming the file and that input or output.
/// </summary>
public sealed record TeacherSignature
{
    /// <summary>The graph's inputs in its own order, each with its role (and layer for <see cref="TeacherInputRole.Past"/>).</summary>
    public required IReadOnlyList<(string Name, TeacherInputRole Role)> Inputs { get; init; }
    /// <summary>The logits output's name.</summary>
    public required string Logits { get; init; }
    /// <summary>The present outputs, key then value per layer: [2·layers].</summary>
    public required IReadOnlyList<string> Present { get; init; }
    /// <summary>The past inputs, key then value per layer: [2·layers].</summary>
    public required IReadOnlyList<string> Past { get; init; }
    /// <summary>Decoder layers.</summary>
    public required int Layers { get; init; }
    /// <summary>Key/value heads.</summary>
    public required int KvHeads { get; init; }
    /// <summary>Per-head width.</summary>
    public required int HeadDim { get; init; }
    /// <summary>The last axis of logits.</summary>
    public required int Vocab { get; init; }
    /// <summary>Element type of every past/present tensor: Float, Float16 or BFloat16.</summary>
    public required TensorElementType KvType { get; init; }
    /// <summary>Element type of logits: Float, Float16 or BFloat16 (converted to fp32 at the boundary).</summary>
    public required TensorElementType LogitsType { get; init; }
    /// <summary>Rank of use_cache_branch (1: shape [1], 0: a scalar); meaningful when the graph has the input.</summary>
    public int UseCacheBranchRank { get; init; } = 1;
    /// <summary>Rank of total_sequence_length (0: a scalar, as GroupQueryAttention documents it; 1: shape [1]); meaningful when the graph has the input.</summary>
    public int TotalSequenceLengthRank { get; init; }

    /// <summary>Whether the graph has an input of this role.</summary>
    public bool Has(TeacherInputRole role) => Inputs.Any(i => i.Role == role);

    /// <summary>A short description for logs: e.g. "optimum (position_ids, attention_mask), KV Float16, logits Float".</summary>
    public string Describe()
    {
        var extras = Inputs.Where(i => i.Role is not (TeacherInputRole.InputIds or TeacherInputRole.Past)).Select(i => i.Name);
        string kind = Has(TeacherInputRole.SeqlensK) ? "GroupQueryAttention" : Has(TeacherInputRole.UseCacheBranch) ? "merged decoder" : "text-generation-with-past";
        return $"{kind} ({string.Join(", ", extras)}), {Layers} layers of KV [batch, {KvHeads}, past, {HeadDim}] {KvType}, logits {LogitsType}";
    }

    private static readonly TensorElementType[] FloatTypes = [TensorElementType.Float, TensorElementType.Float16, TensorElementType.BFloat16];

    /// <summary>
    /// Reads the signature of <paramref name="session"/> (the model at <paramref name="path"/>), with graph names from
    /// <paramref name="names"/>. <paramref name="kvHeadsHint"/>/<paramref name="headDimHint"/> (from a config beside the
    /// model) stand in for KV axes the graph leaves symbolic. Raises <see cref="InvalidDataException"/> naming the file
    /// and the input or output that does not fit.
    /// </summary>
    public static TeacherSignature Read(InferenceSession session, string path, TeacherNames? names = null, int? kvHeadsHint = null, int? headDimHint = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        return Read(session.InputMetadata, session.OutputMetadata, path, names, kvHeadsHint, headDimHint);
    }

    internal static TeacherSignature Read(IReadOnlyDictionary<string, NodeMetadata> ins, IReadOnlyDictionary<string, NodeMetadata> outs, string path,
        TeacherNames? names, int? kvHeadsHint, int? headDimHint)
    {
        names ??= TeacherNames.Default;
        string Listing(IReadOnlyDictionary<string, NodeMetadata> map) => string.Join(", ", map.Keys);
        NodeMetadata Need(IReadOnlyDictionary<string, NodeMetadata> map, string name, string kind, TensorElementType[] types, int[] ranks)
        {
            if (!map.TryGetValue(name, out var m))
                throw new InvalidDataException($"{path}: the model has no {kind} '{name}' (it has: {Listing(map)}).");
            Check(m, name, kind, types, ranks);
            return m;
        }
        void Check(NodeMetadata m, string name, string kind, TensorElementType[] types, int[] ranks)
        {
            if (!m.IsTensor || Array.IndexOf(types, m.ElementDataType) < 0)
                throw new InvalidDataException($"{path}: {kind} '{name}' must be a {string.Join(" or ", types)} tensor, is {(m.IsTensor ? m.ElementDataType.ToString() : m.OnnxValueType.ToString())}.");
            if (Array.IndexOf(ranks, m.Dimensions.Length) < 0)
                throw new InvalidDataException($"{path}: {kind} '{name}' must have rank {string.Join(" or ", ranks)}, has [{string.Join(", ", m.Dimensions)}].");
        }
        TensorElementType[] I64 = [TensorElementType.Int64], I32 = [TensorElementType.Int32];

        var inputs = new List<(string, TeacherInputRole)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Optional(string name, TeacherInputRole role, TensorElementType[] types, int[] ranks)
        {
            if (!ins.TryGetValue(name, out var m)) return;
            Check(m, name, "input", types, ranks);
            seen.Add(name);
        }
        Need(ins, names.InputIds, "input", I64, [2]); seen.Add(names.InputIds);
        Optional(names.AttentionMask, TeacherInputRole.AttentionMask, I64, [2]);
        Optional(names.PositionIds, TeacherInputRole.PositionIds, I64, [2]);
        Optional(names.UseCacheBranch, TeacherInputRole.UseCacheBranch, [TensorElementType.Bool], [0, 1]);
        Optional(names.SeqlensK, TeacherInputRole.SeqlensK, I32, [1]);
        Optional(names.TotalSequenceLength, TeacherInputRole.TotalSequenceLength, I32, [0, 1]);
        if (seen.Contains(names.SeqlensK) != seen.Contains(names.TotalSequenceLength))
            throw new InvalidDataException($"{path}: the model has input '{(seen.Contains(names.SeqlensK) ? names.SeqlensK : names.TotalSequenceLength)}' " +
                $"without '{(seen.Contains(names.SeqlensK) ? names.TotalSequenceLength : names.SeqlensK)}' (GroupQueryAttention takes both).");
        if (ins.TryGetValue(names.UseCacheBranch, out var ucb) && ucb.Dimensions is [var d] && d != 1 && d > 0)
            throw new InvalidDataException($"{path}: input '{names.UseCacheBranch}' must hold one value, has [{d}].");

        var logits = Need(outs, names.Logits, "output", FloatTypes, [3]);
        int layers = 0;
        while (ins.ContainsKey(NameOf(names.PastKey, layers))) layers++;
        if (layers == 0)
            throw new InvalidDataException($"{path}: the model has no input '{NameOf(names.PastKey, 0)}' (not a decoder with a KV cache; it has: {Listing(ins)}).");
        var past = new List<string>();
        var present = new List<string>();
        int kvHeads = 0, headDim = 0;
        TensorElementType? kvType = null;
        for (int i = 0; i < layers; i++)
            foreach (var (inName, outName) in new[] { (NameOf(names.PastKey, i), NameOf(names.PresentKey, i)), (NameOf(names.PastValue, i), NameOf(names.PresentValue, i)) })
            {
                var m = Need(ins, inName, "input", FloatTypes, [4]);
                var o = Need(outs, outName, "output", FloatTypes, [4]);
                seen.Add(inName);
                kvType ??= m.ElementDataType;
                if (m.ElementDataType != kvType || o.ElementDataType != kvType)
                    throw new InvalidDataException($"{path}: input '{inName}' is {m.ElementDataType} and output '{outName}' {o.ElementDataType}; the cache of '{NameOf(names.PastKey, 0)}' is {kvType}: every past and present tensor must have one element type.");
                if (m.Dimensions[2] > 0)
                    throw new InvalidDataException($"{path}: input '{inName}' has [{string.Join(", ", m.Dimensions)}]: axis 2 must be the dynamic past length " +
                        "(the teacher feeds BNSH [batch, kv_heads, past, head_dim] with past and present apart, not a fixed-size shared buffer).");
                int h = m.Dimensions[1] > 0 ? m.Dimensions[1] : kvHeadsHint ?? 0;
                int w = m.Dimensions[3] > 0 ? m.Dimensions[3] : headDimHint ?? 0;
                if (h <= 0 || w <= 0)
                    throw new InvalidDataException($"{path}: input '{inName}' must have fixed kv_heads and head_dim ([batch, kv_heads, past, head_dim]; no config beside the model gives them), has [{string.Join(", ", m.Dimensions)}].");
                if (kvHeads == 0) { kvHeads = h; headDim = w; }
                else if (h != kvHeads || w != headDim)
                    throw new InvalidDataException($"{path}: input '{inName}' has [{string.Join(", ", m.Dimensions)}], other layers have kv_heads {kvHeads}, head_dim {headDim}.");
                foreach (var (name, dims) in new[] { (inName, m.Dimensions), (outName, o.Dimensions) })
                    if ((dims[1] > 0 && dims[1] != kvHeads) || (dims[3] > 0 && dims[3] != headDim))
                        throw new InvalidDataException($"{path}: '{name}' has [{string.Join(", ", dims)}], expected [batch, {kvHeads}, seq, {headDim}] (BNSH).");
                past.Add(inName); present.Add(outName);
            }

        foreach (var name in ins.Keys)
            if (!seen.Contains(name))
                throw new InvalidDataException($"{path}: input '{name}' is not one the teacher can feed (it feeds {names.InputIds}, {names.AttentionMask}, {names.PositionIds}, " +
                    $"{names.UseCacheBranch}, {names.SeqlensK}, {names.TotalSequenceLength}, {NameOf(names.PastKey, 0)}…, {NameOf(names.PastValue, 0)}…).");
        var known = new HashSet<string>(present, StringComparer.Ordinal) { names.Logits };
        foreach (var name in outs.Keys)
            if (!known.Contains(name))
                throw new InvalidDataException($"{path}: output '{name}' is not one the teacher reads (it reads {names.Logits}, {NameOf(names.PresentKey, 0)}…, {NameOf(names.PresentValue, 0)}… for {layers} layers).");

        // the graph's own order, so that a Run call lists them as the model does
        foreach (var name in ins.Keys)
        {
            var role = name == names.InputIds ? TeacherInputRole.InputIds
                : name == names.AttentionMask ? TeacherInputRole.AttentionMask
                : name == names.PositionIds ? TeacherInputRole.PositionIds
                : name == names.UseCacheBranch ? TeacherInputRole.UseCacheBranch
                : name == names.SeqlensK ? TeacherInputRole.SeqlensK
                : name == names.TotalSequenceLength ? TeacherInputRole.TotalSequenceLength
                : TeacherInputRole.Past;
            inputs.Add((name, role));
        }

        int vocab = logits.Dimensions[2];
        if (vocab <= 0) throw new InvalidDataException($"{path}: output '{names.Logits}' must have a fixed vocabulary axis, has [{string.Join(", ", logits.Dimensions)}].");
        return new TeacherSignature
        {
            Inputs = inputs, Logits = names.Logits, Present = present, Past = past,
            Layers = layers, KvHeads = kvHeads, HeadDim = headDim, Vocab = vocab,
            KvType = kvType!.Value, LogitsType = logits.ElementDataType,
            UseCacheBranchRank = ins.TryGetValue(names.UseCacheBranch, out var u) ? u.Dimensions.Length : 1,
            TotalSequenceLengthRank = ins.TryGetValue(names.TotalSequenceLength, out var t) ? t.Dimensions.Length : 0,
        };
    }

    private static string NameOf(string template, int layer) => TeacherNames.Layer(template, layer);
}
