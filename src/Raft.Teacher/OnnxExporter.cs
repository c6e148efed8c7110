using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// Exports a Llama-family checkpoint as an ONNX causal language model with Optimum's
/// <c>text-generation-with-past</c> signature (opset 17, default domain only), so that ONNX Runtime can serve it
/// as the frozen teacher. Inputs: <c>input_ids</c> [batch, seq] int64, <c>attention_mask</c> [batch, past+seq]
/// int64, <c>position_ids</c> [batch, seq] int64, <c>past_key_values.{i}.key</c>/<c>.value</c>
/// [batch, kv_heads, past, head_dim] float. Outputs: <c>logits</c> [batch, seq, vocab] float,
/// <c>present.{i}.key</c>/<c>.value</c> [batch, kv_heads, past+seq, head_dim]. The graph computes what
/// <see cref="LlamaModel"/> computes (Hugging Face semantics): RMSNorm, RoPE (rotate_half) from cos/sin tables
/// gathered by position_ids, causal grouped-query attention (the mask is causal by index in the key sequence and
/// combined with attention_mask, and limited to a layer's sliding window when it has one), SwiGLU, tied or separate
/// lm_head, the layout's biases (q/k/v, o_proj, MLP), Qwen3's per-head q/k RMSNorm, and the RoPE variant's tables
/// (<see cref="RotaryEmbedding"/>: linear, llama3, yarn with its factor on cos and sin). Dynamic NTK, whose tables depend
/// on the sequence length, is refused by name.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The model file name.</summary>
    public const string ModelFile = "model.onnx";
    /// <summary>The external-data file name (weights live there when they are too large to sit in the protobuf).</summary>
    public const string DataFile = "model.onnx.data";
    /// <summary>The ONNX opset the graph uses.</summary>
    public const int Opset = 17;
    /// <summary>The default external-data threshold: 1.5 GB of weights (protobuf cannot hold more than 2 GB).</summary>
    public const long DefaultExternalDataThreshold = 1_500_000_000;

    private const long DataAlignment = 4096;
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;

    /// <summary>
    /// Writes <c>model.onnx</c> (and <c>config.json</c>) into <paramref name="outDir"/>. When the weights total more
    /// than <paramref name="externalDataThreshold"/> bytes, every weight tensor and RoPE table goes to
    /// <c>model.onnx.data</c> (referenced through <c>TensorProto.external_data</c>); otherwise they are inline and a
    /// stale <c>model.onnx.data</c> is removed. Each file is written atomically (temporary file, then rename), the
    /// data file before the model that refers to it.
    /// </summary>
    /// <param name="config">The architecture.</param>
    /// <param name="weights">Parameters with Hugging Face names and shapes (<see cref="DecoderLayout.Tensors"/>).</param>
    /// <param name="outDir">The output directory (created when missing).</param>
    /// <param name="externalDataThreshold">Weight bytes above which the weights go to external data.</param>
    public static void Export(ModelConfig config, TensorSet weights, string outDir, long externalDataThreshold = DefaultExternalDataThreshold)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(outDir);
        if (externalDataThreshold < 0)
            throw new ArgumentOutOfRangeException(nameof(externalDataThreshold), externalDataThreshold, "externalDataThreshold must be >= 0.");
        var layout = new LlamaModel(config, weights).Layout; // checks every tensor's presence and shape, and rejects unsupported biases
        if (layout.Rope.Type == RopeType.Dynamic)
            throw new UnsupportedConfigException(config.RopeScaling is not null ? "rope_scaling.rope_type" : "rope_parameters.rope_type", "\"dynamic\"",
                config.Source, "the ONNX export has fixed cos/sin tables; dynamic NTK's depend on the sequence length and are not exported.");
        Directory.CreateDirectory(outDir);

        var builder = new GraphBuilder(layout, weights);
        var (graph, large) = builder.Build();
        long weightBytes = large.Sum(t => (long)t.Data.Length * sizeof(float));
        bool external = weightBytes > externalDataThreshold;

        string dataPath = Path.Combine(outDir, DataFile);
        if (external)
        {
            long offset = 0;
            AtomicFile.Write(dataPath, stream =>
            {
                foreach (var t in large)
                {
                    // page-aligned offsets let ONNX Runtime map tensors from the file instead of copying them
                    long aligned = (offset + DataAlignment - 1) / DataAlignment * DataAlignment;
                    if (aligned > offset) { stream.Write(new byte[aligned - offset]); offset = aligned; }
                    var bytes = MemoryMarshal.AsBytes(t.Data.AsSpan());
                    var proto = NewTensor(t.Name, F32, t.Shape);
                    proto.DataLocation = TensorProto.Types.DataLocation.External;
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = DataFile });
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    graph.Initializer.Add(proto);
                    stream.Write(bytes);
                    offset += bytes.Length;
                }
            });
        }
        else
        {
            foreach (var t in large)
            {
                var proto = NewTensor(t.Name, F32, t.Shape);
                proto.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(t.Data.AsSpan()));
                graph.Initializer.Add(proto);
            }
        }

        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "Raft.Teacher",
            ProducerVersion = "1",
            DocString = "Llama-family causal LM exported by Raft.Teacher (text-generation-with-past signature).",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        AtomicFile.Write(Path.Combine(outDir, ModelFile), s => model.WriteTo(s));
        if (!external) File.Delete(dataPath);
        AtomicFile.WriteText(Path.Combine(outDir, Checkpoint.ConfigFile), config.ToJson());
    }

    private static TensorProto NewTensor(string name, TensorProto.Types.DataType type, IEnumerable<int> shape)
    {
        var t = new TensorProto { Name = name, DataType = (int)type };
        foreach (int d in shape) t.Dims.Add(d);
        return t;
    }

    /// <summary>A weight (or table) to store as an initializer: inline or external.</summary>
    private sealed record Weight(string Name, int[] Shape, float[] Data);

    private sealed class GraphBuilder(DecoderLayout layout, TensorSet w)
    {
        private readonly ModelConfig c = layout.Config;
        private readonly GraphProto _g = new() { Name = "raft_causal_lm" };
        private readonly List<Weight> _large = [];
        private int _id;

        public (GraphProto Graph, List<Weight> Large) Build()
        {
            int d = c.HiddenSize, h = c.NumAttentionHeads, kv = c.KvHeads, hd = layout.HeadDim, v = c.VocabSize;
            int layers = c.NumHiddenLayers, group = h / kv, half = hd / 2;

            _g.Input.Add(Value("input_ids", I64, "batch_size", "sequence_length"));
            _g.Input.Add(Value("attention_mask", I64, "batch_size", "total_sequence_length"));
            _g.Input.Add(Value("position_ids", I64, "batch_size", "sequence_length"));
            for (int i = 0; i < layers; i++)
            {
                _g.Input.Add(Value($"past_key_values.{i}.key", F32, "batch_size", kv, "past_sequence_length", hd));
                _g.Input.Add(Value($"past_key_values.{i}.value", F32, "batch_size", kv, "past_sequence_length", hd));
            }
            _g.Output.Add(Value("logits", F32, "batch_size", "sequence_length", v));
            for (int i = 0; i < layers; i++)
            {
                _g.Output.Add(Value($"present.{i}.key", F32, "batch_size", kv, "total_sequence_length", hd));
                _g.Output.Add(Value($"present.{i}.value", F32, "batch_size", kv, "total_sequence_length", hd));
            }

            foreach (var t in w.Tensors) _large.Add(new Weight(t.Name, t.Shape, t.Data));

            // RoPE tables [max_pos, head_dim], both halves repeated (HF's cat(freqs, freqs)), computed as RopeTable does
            int maxPos = c.MaxPositionEmbeddings;
            var cos = new float[(long)maxPos * hd];
            var sin = new float[(long)maxPos * hd];
            var invFreq = layout.Rope.InverseFrequenciesF32(maxPos);
            float ropeScale = (float)layout.Rope.AttentionScaling;
            for (int i = 0; i < half; i++)
            {
                float inv = invFreq[i];
                for (int p = 0; p < maxPos; p++)
                {
                    float a = (float)p * inv;
                    float cs = MathF.Cos(a), sn = MathF.Sin(a);
                    if (ropeScale != 1f) { cs *= ropeScale; sn *= ropeScale; }
                    cos[(long)p * hd + i] = cs; cos[(long)p * hd + half + i] = cs;
                    sin[(long)p * hd + i] = sn; sin[(long)p * hd + half + i] = sn;
                }
            }
            _large.Add(new Weight("rope.cos_table", [maxPos, hd], cos));
            _large.Add(new Weight("rope.sin_table", [maxPos, hd], sin));

            string two = ConstF("two", 2f), eps = ConstF("eps", (float)c.RmsNormEps);
            string scale = ConstF("attn_scale", 1f / MathF.Sqrt(hd)), minF = ConstF("mask_min", float.MinValue);
            string i0 = ConstI("zero", [0], scalar: true), i1 = ConstI("one", [1], scalar: true);
            string ax0 = ConstI("axis_0", [0]), ax1 = ConstI("axis_1", [1]), ax12 = ConstI("axes_1_2", [1, 2]);
            string axLast = ConstI("axis_last", [-1]), halfS = ConstI("half", [half]);
            string big = ConstI("int_max", [long.MaxValue]);

            // shapes: [B, S] from input_ids; T = attention_mask length; P = T − S
            string bs = Node("Shape", ["input_ids"], "bs_shape");
            string sLen = Node("Gather", [bs, i1], "seq_len", IntAttr("axis", 0));
            string amShape = Node("Shape", ["attention_mask"], "am_shape");
            string tLen = Node("Gather", [amShape, i1], "total_len", IntAttr("axis", 0));
            string pLen = Node("Sub", [tLen, sLen], "past_len");
            string qShape = Node("Concat", [bs, ConstI("q_heads", [h, hd])], "q_shape", IntAttr("axis", 0));
            string kShape = Node("Concat", [bs, ConstI("kv_heads", [kv, hd])], "k_shape", IntAttr("axis", 0));
            string logitsShape = Node("Concat", [bs, ConstI("vocab", [v])], "logits_shape", IntAttr("axis", 0));

            // mask [B, 1, S, T]: key j visible to query i when j ≤ P + i and attention_mask[b, j] ≠ 0
            string keyIdx = Node("Range", [i0, tLen, i1], "key_index");
            string qIdx = Node("Range", [pLen, tLen, i1], "query_index");
            string qCol = Node("Unsqueeze", [qIdx, ax1], "query_column");
            string causal = Node("LessOrEqual", [keyIdx, qCol], "causal");
            string amBool = Node("Cast", ["attention_mask"], "mask_bool", IntAttr("to", (long)TensorProto.Types.DataType.Bool));
            string am4 = Node("Unsqueeze", [amBool, ax12], "mask_b11t");
            string mask = Node("And", [causal, am4], "mask");
            // a sliding window w: key j also needs j > i − w (i the query's index in the key sequence)
            var windowMasks = new Dictionary<int, string>();
            string MaskFor(int? window)
            {
                if (window is not { } w) return mask;
                if (windowMasks.TryGetValue(w, out var m)) return m;
                string lowest = Node("Sub", [qCol, ConstI($"window_{w}", [w], scalar: true)], $"window_{w}_floor");
                string inWindow = Node("Greater", [keyIdx, lowest], $"window_{w}_in");
                return windowMasks[w] = Node("And", [mask, inWindow], $"mask_window_{w}");
            }

            // RoPE: cos/sin [B, 1, S, hd]
            string cosG = Node("Unsqueeze", [Node("Gather", ["rope.cos_table", "position_ids"], "cos_bs"), ax1], "cos");
            string sinG = Node("Unsqueeze", [Node("Gather", ["rope.sin_table", "position_ids"], "sin_bs"), ax1], "sin");

            // x [B·S, d]
            string ids = Node("Reshape", ["input_ids", ConstI("flat", [-1])], "ids_flat");
            string x = Node("Gather", [layout.Embedding.Name, ids], "embed");
            string kvRepeat = ConstI("kv_repeat", [1, 1, group, 1, 1]);
            string headsShape = ConstI("heads_shape", [0, h, -1, hd]);
            string flatQ = ConstI("flat_q", [-1, h * hd]);

            for (int l = 0; l < layers; l++)
            {
                var L = layout.Layers[l];
                string pre = $"l{l}.";
                string xn = RmsNorm(x, L.InputNorm, two, eps, pre + "ln1");
                string q = Linear(xn, L.QProj, L.QBias, pre + "q");
                string k = Linear(xn, L.KProj, L.KBias, pre + "k");
                string vv = Linear(xn, L.VProj, L.VBias, pre + "v");
                // [B·S, H·hd] → [B, H, S, hd]
                q = Node("Reshape", [q, qShape], pre + "q_bshd");
                k = Node("Reshape", [k, kShape], pre + "k_bshd");
                if (L.QNorm is not null)
                {
                    // Qwen3: RMSNorm over each head's head_dim before RoPE
                    q = RmsNorm(q, L.QNorm, two, eps, pre + "q_norm");
                    k = RmsNorm(k, L.KNorm!, two, eps, pre + "k_norm");
                }
                q = Node("Transpose", [q], pre + "q_bhsd", IntsAttr("perm", 0, 2, 1, 3));
                k = Node("Transpose", [k], pre + "k_bhsd", IntsAttr("perm", 0, 2, 1, 3));
                vv = Node("Transpose", [Node("Reshape", [vv, kShape], pre + "v_bshd")], pre + "v_bhsd", IntsAttr("perm", 0, 2, 1, 3));
                q = Rope(q, cosG, sinG, ax0, halfS, axLast, big, pre + "q_rope");
                k = Rope(k, cosG, sinG, ax0, halfS, axLast, big, pre + "k_rope");
                string kAll = Node("Concat", [$"past_key_values.{l}.key", k], $"present.{l}.key", IntAttr("axis", 2));
                string vAll = Node("Concat", [$"past_key_values.{l}.value", vv], $"present.{l}.value", IntAttr("axis", 2));
                // GQA: [B, KV, T, hd] → [B, KV, g, T, hd] → [B, H, T, hd] (query head j reads kv head j / g)
                string kRep = Node("Reshape", [Node("Expand", [Node("Unsqueeze", [kAll, ConstI(pre + "ax2", [2])], pre + "k5"), kvRepeat], pre + "k_exp"), headsShape], pre + "k_rep");
                string vRep = Node("Reshape", [Node("Expand", [Node("Unsqueeze", [vAll, ConstI(pre + "ax2v", [2])], pre + "v5"), kvRepeat], pre + "v_exp"), headsShape], pre + "v_rep");
                string kT = Node("Transpose", [kRep], pre + "k_t", IntsAttr("perm", 0, 1, 3, 2));
                string scores = Node("Mul", [Node("MatMul", [q, kT], pre + "qk"), scale], pre + "scores");
                string masked = Node("Where", [MaskFor(L.Features.SlidingWindow), scores, minF], pre + "masked");
                string probs = Node("Softmax", [masked], pre + "probs", IntAttr("axis", -1));
                string att = Node("MatMul", [probs, vRep], pre + "att");
                att = Node("Reshape", [Node("Transpose", [att], pre + "att_bshd", IntsAttr("perm", 0, 2, 1, 3)), flatQ], pre + "att_flat");
                x = Node("Add", [x, Linear(att, L.OProj, L.OBias, pre + "o")], pre + "x_mid");
                // SwiGLU MLP
                string xn2 = RmsNorm(x, L.PostAttentionNorm, two, eps, pre + "ln2");
                string gate = Linear(xn2, L.GateProj, L.GateBias, pre + "gate");
                string up = Linear(xn2, L.UpProj, L.UpBias, pre + "up");
                string silu = Node("Mul", [gate, Node("Sigmoid", [gate], pre + "gate_sigmoid")], pre + "silu");
                string hh = Node("Mul", [silu, up], pre + "swiglu");
                x = Node("Add", [x, Linear(hh, L.DownProj, L.DownBias, pre + "down")], pre + "x_out");
            }
            string xf = RmsNorm(x, layout.FinalNorm.Name, two, eps, "final_norm");
            // the node's output keeps the name it has always had in exported graphs (an ONNX value, not a checkpoint tensor)
            string logitsFlat = Linear(xf, layout.OutputProjection, null, "lm_head");
            Node("Reshape", [logitsFlat, logitsShape], "logits");
            return (_g, _large);
        }

        private string RmsNorm(string x, string weight, string two, string eps, string name)
        {
            string sq = Node("Pow", [x, two], name + "_sq");
            string mean = Node("ReduceMean", [sq], name + "_mean", IntsAttr("axes", -1), IntAttr("keepdims", 1));
            string rms = Node("Sqrt", [Node("Add", [mean, eps], name + "_mean_eps")], name + "_rms");
            return Node("Mul", [Node("Div", [x, rms], name + "_normed"), weight], name);
        }

        /// <summary>y [N, out] = x [N, in] · Wᵀ (+ b), W in Hugging Face's [out, in] layout (Gemm transB).</summary>
        private string Linear(string x, string weight, string? bias, string name) =>
            Node("Gemm", bias is null ? [x, weight] : [x, weight, bias], name, IntAttr("transB", 1));

        /// <summary>x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the last axis.</summary>
        private string Rope(string x, string cos, string sin, string start, string half, string axis, string big, string name)
        {
            string x1 = Node("Slice", [x, start, half, axis], name + "_x1");
            string x2 = Node("Slice", [x, half, big, axis], name + "_x2");
            string rot = Node("Concat", [Node("Neg", [x2], name + "_negx2"), x1], name + "_rot", IntAttr("axis", -1));
            return Node("Add", [Node("Mul", [x, cos], name + "_xcos"), Node("Mul", [rot, sin], name + "_rsin")], name);
        }

        private string Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
        {
            var n = new NodeProto { OpType = op, Name = $"{op}_{_id++}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            n.Attribute.AddRange(attributes);
            _g.Node.Add(n);
            return output;
        }

        private string ConstF(string name, float value)
        {
            var t = NewTensor(name, F32, []);
            t.FloatData.Add(value);
            _g.Initializer.Add(t);
            return name;
        }

        private string ConstI(string name, long[] values, bool scalar = false)
        {
            var t = NewTensor(name, I64, scalar ? [] : [values.Length]);
            t.Int64Data.AddRange(values);
            _g.Initializer.Add(t);
            return name;
        }

        private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (object d in dims)
                shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s }
                    : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
            return new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
            };
        }

        private static AttributeProto IntAttr(string name, long value) =>
            new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

        private static AttributeProto IntsAttr(string name, params long[] values)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(values);
            return a;
        }
    }
}
