using Google.Protobuf;
using Onnx;
using Raft.Model;

namespace Raft.Teacher.Tests;

/// <summary>
/// Rewrites the engine's own export (<see cref="OnnxExporter"/>) into the signatures real exporters write, on the same
/// weights, so that each can be scored against <see cref="EngineTeacher"/>: Optimum without position_ids (positions
/// from the mask, as Hugging Face derives them), Optimum's legacy merged decoder (an If on use_cache_branch), fp16/bf16
/// KV and logits at the boundary, and the GenAI model builder's GroupQueryAttention decoder (rotary inside the op,
/// seqlens_k / total_sequence_length as graph inputs or computed from attention_mask). The rewrites read the
/// exporter's value names (<c>l{i}.q</c>, <c>l{i}.att_flat</c>, …): a rename there fails these tests loudly.
/// </summary>
internal static class SignatureVariants
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;
    private const TensorProto.Types.DataType I32 = TensorProto.Types.DataType.Int32;

    public static ModelProto Load(string dir) => ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, OnnxExporter.ModelFile)));

    public static void Save(ModelProto m, string dir, string file = OnnxExporter.ModelFile) =>
        File.WriteAllBytes(Path.Combine(dir, file), m.ToByteArray());

    /// <summary>Inputs and outputs in another order (the names, not the positions, carry the meaning).</summary>
    public static void Shuffle(ModelProto m, int seed)
    {
        var rng = new Random(seed);
        var ins = m.Graph.Input.OrderBy(_ => rng.Next()).ToList();
        var outs = m.Graph.Output.OrderBy(_ => rng.Next()).ToList();
        m.Graph.Input.Clear(); m.Graph.Input.AddRange(ins);
        m.Graph.Output.Clear(); m.Graph.Output.AddRange(outs);
    }

    /// <summary>
    /// Optimum without position_ids: the graph derives them as Hugging Face does from the mask,
    /// position_ids = (cumsum(attention_mask, 1) − 1) with masked slots set to 1, the last seq columns.
    /// </summary>
    public static void PositionsFromMask(ModelProto m)
    {
        var g = m.Graph;
        g.Input.Remove(g.Input.Single(i => i.Name == "position_ids"));
        var nodes = new List<NodeProto>();
        Const(g, "pfm.axis1", I64, [], [1]);
        Const(g, "pfm.one", I64, [], [1]);
        Const(g, "pfm.zero", I64, [], [0]);
        Const(g, "pfm.i1", I64, [1], [1]);
        Const(g, "pfm.big", I64, [1], [long.MaxValue]);
        nodes.Add(Node("CumSum", ["attention_mask", "pfm.axis1"], "pfm.cumsum"));
        nodes.Add(Node("Sub", ["pfm.cumsum", "pfm.one"], "pfm.pos_all"));
        nodes.Add(Node("Equal", ["attention_mask", "pfm.zero"], "pfm.masked"));
        nodes.Add(Node("Where", ["pfm.masked", "pfm.one", "pfm.pos_all"], "pfm.pos_filled"));
        nodes.Add(Node("Shape", ["input_ids"], "pfm.ids_shape"));
        nodes.Add(Node("Shape", ["attention_mask"], "pfm.mask_shape"));
        nodes.Add(Node("Slice", ["pfm.ids_shape", "pfm.i1", "pfm.big"], "pfm.seq"));
        nodes.Add(Node("Slice", ["pfm.mask_shape", "pfm.i1", "pfm.big"], "pfm.total"));
        nodes.Add(Node("Sub", ["pfm.total", "pfm.seq"], "pfm.past"));
        nodes.Add(Node("Slice", ["pfm.pos_filled", "pfm.past", "pfm.big", "pfm.i1"], "position_ids"));
        for (int i = nodes.Count - 1; i >= 0; i--) g.Node.Insert(0, nodes[i]);
    }

    /// <summary>
    /// Optimum's legacy merged decoder: a bool input use_cache_branch [1]; per past input an If node whose then-branch
    /// passes the past through and whose else-branch drops it (an empty slice), so a decode step run with the switch off
    /// loses its history.
    /// </summary>
    public static void MergedDecoder(ModelProto m)
    {
        var g = m.Graph;
        g.Input.Add(ValueInfo("use_cache_branch", TensorProto.Types.DataType.Bool, 1));
        var pasts = g.Input.Where(i => i.Name.StartsWith("past_key_values.", StringComparison.Ordinal)).Select(i => i.Name).ToList();
        int at = 0;
        foreach (string p in pasts)
        {
            string eff = p + ".branch";
            RenameConsumers(g, p, eff);
            var then = new GraphProto { Name = p + ".then" };
            then.Node.Add(Node("Identity", [p], p + ".kept"));
            then.Output.Add(new ValueInfoProto { Name = p + ".kept", Type = FloatType() });
            var els = new GraphProto { Name = p + ".else" };
            els.Node.Add(ConstNode(p + ".s0", [0]));
            els.Node.Add(ConstNode(p + ".ax2", [2]));
            els.Node.Add(Node("Slice", [p, p + ".s0", p + ".s0", p + ".ax2"], p + ".dropped"));
            els.Output.Add(new ValueInfoProto { Name = p + ".dropped", Type = FloatType() });
            var iff = Node("If", ["use_cache_branch"], eff);
            iff.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = then });
            iff.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = els });
            g.Node.Insert(at++, iff);
        }
    }

    /// <summary>
    /// The KV cache (past inputs, present outputs) and/or the logits in <paramref name="type"/> (Float16 or BFloat16) at
    /// the graph's boundary, cast to and from fp32 inside, as a half-precision export hands them over.
    /// </summary>
    public static void HalfBoundary(ModelProto m, TensorProto.Types.DataType type, bool kv, bool logits)
    {
        var g = m.Graph;
        if (kv)
            foreach (var input in g.Input.Where(i => i.Name.StartsWith("past_key_values.", StringComparison.Ordinal)).ToList())
            {
                string f = input.Name + ".f32";
                RenameConsumers(g, input.Name, f);
                input.Type.TensorType.ElemType = (int)type;
                g.Node.Insert(0, Cast(input.Name, f, F32));
            }
        foreach (var output in g.Output.ToList())
        {
            bool isKv = output.Name.StartsWith("present.", StringComparison.Ordinal);
            if (!(isKv ? kv : logits && output.Name == "logits")) continue;
            string f = output.Name + ".f32";
            RenameProducer(g, output.Name, f);
            RenameConsumers(g, output.Name, f);
            output.Type.TensorType.ElemType = (int)type;
            g.Node.Add(Cast(f, output.Name, type));
        }
    }

    /// <summary>
    /// The GenAI model builder's decoder: each layer's attention (RoPE, cache concat, GQA expand, softmax) replaced by one
    /// com.microsoft GroupQueryAttention node (do_rotary with cos/sin caches [max_pos, head_dim/2], past/present BNSH,
    /// not shared); no position_ids. With <paramref name="seqlensInputs"/> seqlens_k [batch] int32 and
    /// total_sequence_length (scalar int32) are graph inputs and attention_mask is dropped; otherwise the graph computes
    /// them from attention_mask (ReduceSum − 1, its length), as the model builder does.
    /// </summary>
    public static void GroupQueryAttention(ModelProto m, ModelConfig c, bool seqlensInputs)
    {
        var g = m.Graph;
        int h = c.NumAttentionHeads, kv = c.KvHeads, hd = c.HeadDim, half = hd / 2, maxPos = c.MaxPositionEmbeddings;
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        var pre = new List<NodeProto>();
        if (seqlensInputs)
        {
            g.Input.Add(ValueInfo("seqlens_k", I32, "batch_size"));
            g.Input.Add(ValueInfo("total_sequence_length", I32));
        }
        else
        {
            Const(g, "gqa.ax1", I64, [1], [1]);
            Const(g, "gqa.one", I64, [], [1]);
            Const(g, "gqa.i1", I64, [], [1]);
            pre.Add(Node("ReduceSum", ["attention_mask", "gqa.ax1"], "gqa.lengths", Int("keepdims", 0)));
            pre.Add(Node("Sub", ["gqa.lengths", "gqa.one"], "gqa.seqlens64"));
            pre.Add(Cast("gqa.seqlens64", "seqlens_k", I32));
            pre.Add(Node("Shape", ["attention_mask"], "gqa.mask_shape"));
            pre.Add(Node("Gather", ["gqa.mask_shape", "gqa.i1"], "gqa.total64", Int("axis", 0)));
            pre.Add(Cast("gqa.total64", "total_sequence_length", I32));
        }
        if (g.Node.Any(n => n.Output.Any(o => o.StartsWith("mask_window_", StringComparison.Ordinal))))
            throw new NotSupportedException("the GroupQueryAttention rewrite does not carry a sliding window over (local_window_size).");
        // GroupQueryAttention's caches [max_pos, head_dim/2]: the first half of the exporter's own tables (both halves
        // are the same angles), so every RoPE variant the exporter writes carries over
        float[] Half(string table)
        {
            var t = g.Initializer.Single(i => i.Name == table);
            var all = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span);
            var h = new float[maxPos * half];
            for (int p = 0; p < maxPos; p++) all.Slice(p * hd, half).CopyTo(h.AsSpan(p * half, half));
            return h;
        }
        float[] cos = Half("rope.cos_table"), sin = Half("rope.sin_table");
        FloatConst(g, "gqa.cos_cache", [maxPos, half], cos);
        FloatConst(g, "gqa.sin_cache", [maxPos, half], sin);
        Const(g, "gqa.q_width", I64, [1], [h * hd]);
        Const(g, "gqa.kv_width", I64, [1], [kv * hd]);
        Const(g, "gqa.flat", I64, [2], [-1, h * hd]);
        pre.Add(Node("Shape", ["input_ids"], "gqa.bs"));
        pre.Add(Node("Concat", ["gqa.bs", "gqa.q_width"], "gqa.q_shape", Int("axis", 0)));
        pre.Add(Node("Concat", ["gqa.bs", "gqa.kv_width"], "gqa.kv_shape", Int("axis", 0)));
        for (int i = pre.Count - 1; i >= 0; i--) g.Node.Insert(0, pre[i]);

        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"l{l}.";
            // drop the exporter's attention: everything from the present concat to the flat attention output
            foreach (string o in new[] { $"present.{l}.key", $"present.{l}.value" }) g.Node.RemoveAt(IndexOfProducer(g, o));
            int at = IndexOfProducer(g, p + "att_flat");
            g.Node.RemoveAt(at);
            var gqa = new NodeProto { OpType = "GroupQueryAttention", Domain = "com.microsoft", Name = p + "gqa" };
            gqa.Input.AddRange([p + "gqa_q", p + "gqa_k", p + "gqa_v", $"past_key_values.{l}.key", $"past_key_values.{l}.value",
                "seqlens_k", "total_sequence_length", "gqa.cos_cache", "gqa.sin_cache"]);
            gqa.Output.AddRange([p + "gqa_out", $"present.{l}.key", $"present.{l}.value"]);
            gqa.Attribute.AddRange([Int("num_heads", h), Int("kv_num_heads", kv), Int("do_rotary", 1), Int("rotary_interleaved", 0)]);
            NodeProto[] layer =
            [
                // Qwen3's per-head q/k norms come before RoPE: GroupQueryAttention's rotary reads their outputs
                Node("Reshape", [Produced(g, p + "q_norm") ?? p + "q", "gqa.q_shape"], p + "gqa_q"),
                Node("Reshape", [Produced(g, p + "k_norm") ?? p + "k", "gqa.kv_shape"], p + "gqa_k"),
                Node("Reshape", [p + "v", "gqa.kv_shape"], p + "gqa_v"),
                gqa,
                Node("Reshape", [p + "gqa_out", "gqa.flat"], p + "att_flat"),
            ];
            for (int i = layer.Length - 1; i >= 0; i--) g.Node.Insert(at, layer[i]);
        }
        RemoveDead(g);
        foreach (string name in new[] { "position_ids", "attention_mask" })
            if (!g.Node.Any(n => n.Input.Contains(name)))
                g.Input.Remove(g.Input.Single(i => i.Name == name));
    }

    /// <summary>Removes nodes none of whose outputs is read (by a node or as a graph output), and unread initializers.</summary>
    private static void RemoveDead(GraphProto g)
    {
        while (true)
        {
            var read = new HashSet<string>(g.Node.SelectMany(n => n.Input).Concat(g.Output.Select(o => o.Name)));
            var dead = g.Node.Where(n => !n.Output.Any(read.Contains)).ToList();
            if (dead.Count == 0) break;
            foreach (var n in dead) g.Node.Remove(n);
        }
        var used = new HashSet<string>(g.Node.SelectMany(n => n.Input));
        foreach (var t in g.Initializer.Where(t => !used.Contains(t.Name)).ToList()) g.Initializer.Remove(t);
    }

    private static string? Produced(GraphProto g, string output) => g.Node.Any(n => n.Output.Contains(output)) ? output : null;

    private static int IndexOfProducer(GraphProto g, string output)
    {
        for (int i = 0; i < g.Node.Count; i++) if (g.Node[i].Output.Contains(output)) return i;
        throw new InvalidOperationException($"no node writes '{output}' (did OnnxExporter rename its values?).");
    }

    private static void RenameConsumers(GraphProto g, string from, string to)
    {
        foreach (var n in g.Node)
            for (int i = 0; i < n.Input.Count; i++)
                if (n.Input[i] == from) n.Input[i] = to;
    }

    private static void RenameProducer(GraphProto g, string from, string to)
    {
        var n = g.Node.Single(x => x.Output.Contains(from));
        n.Output[n.Output.IndexOf(from)] = to;
    }

    private static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = "variant." + output };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attributes);
        return n;
    }

    private static NodeProto Cast(string from, string to, TensorProto.Types.DataType type) => Node("Cast", [from], to, Int("to", (long)type));

    private static NodeProto ConstNode(string output, long[] values)
    {
        var t = new TensorProto { Name = output, DataType = (int)I64 };
        t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        return Node("Constant", [], output, new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t });
    }

    private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static void Const(GraphProto g, string name, TensorProto.Types.DataType type, long[] dims, long[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)type };
        t.Dims.AddRange(dims);
        t.Int64Data.AddRange(values);
        g.Initializer.Add(t);
    }

    private static void FloatConst(GraphProto g, string name, long[] dims, float[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)F32 };
        t.Dims.AddRange(dims);
        t.FloatData.AddRange(values);
        g.Initializer.Add(t);
    }

    private static TypeProto FloatType() => new() { TensorType = new TypeProto.Types.Tensor { ElemType = (int)F32 } };

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (object d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }
}
