namespace Raft.Model;

/// <summary>
/// The specification of <see cref="LlamaModel"/>: the whole forward and backward in double precision, built
/// from <see cref="ReferenceOps"/>, slow and plain: every feature of <see cref="DecoderLayerFeatures"/> (biases, Qwen3's
/// per-head q/k RMSNorm, sliding windows) and every <see cref="RopeType"/> (the double-precision inverse frequencies of
/// <see cref="RotaryEmbedding.InverseFrequencies"/>, dynamic NTK from the call's largest position). Parameters are kept as double arrays by Hugging Face name
/// (mutable, so tests can perturb them for finite differences).
/// </summary>
public sealed class ReferenceModel
{
    /// <summary>Copies the parameters to double (the set must hold every tensor of <see cref="DecoderLayout.Tensors"/>).</summary>
    public ReferenceModel(ModelConfig config, TensorSet parameters)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(parameters);
        Config = config;
        Layout = DecoderLayout.For(config);
        foreach (var spec in Layout.Tensors)
            Parameters[spec.Name] = Array.ConvertAll(parameters[spec.Name].Data, v => (double)v);
    }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }
    /// <summary>The architecture's tensor names, shapes and per-layer features.</summary>
    public DecoderLayout Layout { get; }
    /// <summary>Parameters in double, by Hugging Face name.</summary>
    public Dictionary<string, double[]> Parameters { get; } = new(StringComparer.Ordinal);

    /// <summary>What the reference forward keeps for its backward.</summary>
    public sealed class Activations
    {
        internal int[] Tokens = [];
        internal int[] Positions = [];
        internal int Batch, SeqLen;
        internal readonly List<Dictionary<string, double[]>> Layers = [];
        internal double[] XFinal = [], XnF = [];
    }

    /// <summary>tokens [B·T] → logits [B·T, V] (positions 0..T-1 unless given, [B·T]).</summary>
    public double[] Forward(int[] tokens, int batch, int seqLen, out Activations activations, int[]? positions = null)
    {
        var c = Config;
        int n = batch * seqLen, d = c.HiddenSize, h = c.NumAttentionHeads, kv = c.KvHeads, hd = c.HeadDim, f = c.IntermediateSize;
        if (tokens.Length != n) throw new ArgumentException($"tokens has {tokens.Length} values, needs {n}.", nameof(tokens));
        var pos = positions ?? Enumerable.Range(0, n).Select(i => i % seqLen).ToArray();
        var act = new Activations { Tokens = (int[])tokens.Clone(), Positions = pos, Batch = batch, SeqLen = seqLen };
        double[] P(string name) => Parameters[name];
        double[]? B(string? name) => name is null ? null : Parameters[name];
        double eps = c.RmsNormEps;
        var (inv, ropeScale) = RopeFor(pos);
        var x = ReferenceOps.Embedding(tokens, P(Layout.Embedding.Name), d);
        foreach (var L in Layout.Layers)
        {
            var a = new Dictionary<string, double[]> { ["xin"] = x };
            var xn1 = ReferenceOps.RmsNorm(x, P(L.InputNorm), n, d, eps);
            var q = ReferenceOps.Linear(xn1, P(L.QProj), B(L.QBias), n, d, h * hd);
            var k = ReferenceOps.Linear(xn1, P(L.KProj), B(L.KBias), n, d, kv * hd);
            var v = ReferenceOps.Linear(xn1, P(L.VProj), B(L.VBias), n, d, kv * hd);
            a["qraw"] = q; a["kraw"] = k;
            if (L.QNorm is not null)
            {
                q = ReferenceOps.RmsNorm(q, P(L.QNorm), n * h, hd, eps);
                k = ReferenceOps.RmsNorm(k, P(L.KNorm!), n * kv, hd, eps);
            }
            var qr = ReferenceOps.Rope(q, pos, n, h, hd, inv, ropeScale);
            var kr = ReferenceOps.Rope(k, pos, n, kv, hd, inv, ropeScale);
            var att = ReferenceOps.Attention(qr, kr, v, batch, seqLen, h, kv, hd, L.Features.SlidingWindow ?? 0);
            var xmid = ReferenceOps.Add(x, ReferenceOps.Linear(att, P(L.OProj), B(L.OBias), n, h * hd, d));
            var xn2 = ReferenceOps.RmsNorm(xmid, P(L.PostAttentionNorm), n, d, eps);
            var g = ReferenceOps.Linear(xn2, P(L.GateProj), B(L.GateBias), n, d, f);
            var u = ReferenceOps.Linear(xn2, P(L.UpProj), B(L.UpBias), n, d, f);
            var hh = ReferenceOps.SwiGlu(g, u);
            x = ReferenceOps.Add(xmid, ReferenceOps.Linear(hh, P(L.DownProj), B(L.DownBias), n, f, d));
            a["xn1"] = xn1; a["q"] = qr; a["k"] = kr; a["v"] = v; a["att"] = att; a["xmid"] = xmid;
            a["xn2"] = xn2; a["g"] = g; a["u"] = u; a["h"] = hh;
            act.Layers.Add(a);
        }
        act.XFinal = x;
        act.XnF = ReferenceOps.RmsNorm(x, P(Layout.FinalNorm.Name), n, d, eps);
        activations = act;
        return ReferenceOps.Linear(act.XnF, LmHead, null, n, d, c.VocabSize);
    }

    private double[] LmHead => Parameters[Layout.OutputProjection];

    /// <summary>The double inverse frequencies and cos/sin factor for a call at <paramref name="positions"/>.</summary>
    private (double[] InvFreq, double Scale) RopeFor(int[] positions)
    {
        var rope = Layout.Rope;
        int max = positions.Length == 0 ? 0 : positions.Max();
        return (rope.InverseFrequencies(rope.TableLength(max)), rope.AttentionScaling);
    }

    /// <summary>dL/dθ (new arrays, by name) from dL/dlogits [B·T, V] of the recorded forward.</summary>
    public Dictionary<string, double[]> Backward(Activations activations, double[] dLogits)
    {
        var c = Config;
        int batch = activations.Batch, t = activations.SeqLen, n = batch * t;
        int d = c.HiddenSize, h = c.NumAttentionHeads, kv = c.KvHeads, hd = c.HeadDim, f = c.IntermediateSize;
        double eps = c.RmsNormEps;
        var grads = Parameters.ToDictionary(e => e.Key, e => new double[e.Value.Length], StringComparer.Ordinal);
        double[] P(string name) => Parameters[name];
        double[] G(string name) => grads[name];
        string lm = Layout.OutputProjection;
        var (inv, ropeScale) = RopeFor(activations.Positions);
        double[]? Bg(string? name) => name is null ? null : G(name);

        var dxnf = new double[n * d];
        ReferenceOps.LinearBackward(dLogits, activations.XnF, LmHead, dxnf, G(lm), null, n, d, c.VocabSize);
        var dx = new double[n * d];
        string norm = Layout.FinalNorm.Name;
        ReferenceOps.RmsNormBackward(dxnf, activations.XFinal, P(norm), dx, G(norm), n, d, eps);
        for (int l = c.NumHiddenLayers - 1; l >= 0; l--)
        {
            var a = activations.Layers[l];
            var L = Layout.Layers[l];
            // MLP
            var dh = new double[n * f];
            ReferenceOps.LinearBackward(dx, a["h"], P(L.DownProj), dh, G(L.DownProj), Bg(L.DownBias), n, f, d);
            var dg = new double[n * f];
            var du = new double[n * f];
            ReferenceOps.SwiGluBackward(dh, a["g"], a["u"], dg, du);
            var dxn2 = new double[n * d];
            ReferenceOps.LinearBackward(dg, a["xn2"], P(L.GateProj), dxn2, G(L.GateProj), Bg(L.GateBias), n, d, f);
            ReferenceOps.LinearBackward(du, a["xn2"], P(L.UpProj), dxn2, G(L.UpProj), Bg(L.UpBias), n, d, f);
            ReferenceOps.RmsNormBackward(dxn2, a["xmid"], P(L.PostAttentionNorm), dx, G(L.PostAttentionNorm), n, d, eps);
            // attention
            var datt = new double[n * h * hd];
            ReferenceOps.LinearBackward(dx, a["att"], P(L.OProj), datt, G(L.OProj), Bg(L.OBias), n, h * hd, d);
            var dq = new double[n * h * hd];
            var dk = new double[n * kv * hd];
            var dv = new double[n * kv * hd];
            ReferenceOps.AttentionBackward(datt, a["q"], a["k"], a["v"], dq, dk, dv, batch, t, h, kv, hd, L.Features.SlidingWindow ?? 0);
            dq = ReferenceOps.Rope(dq, activations.Positions, n, h, hd, inv, ropeScale, inverse: true);
            dk = ReferenceOps.Rope(dk, activations.Positions, n, kv, hd, inv, ropeScale, inverse: true);
            if (L.QNorm is not null)
            {
                var dqRaw = new double[dq.Length];
                ReferenceOps.RmsNormBackward(dq, a["qraw"], P(L.QNorm), dqRaw, G(L.QNorm), n * h, hd, eps);
                var dkRaw = new double[dk.Length];
                ReferenceOps.RmsNormBackward(dk, a["kraw"], P(L.KNorm!), dkRaw, G(L.KNorm!), n * kv, hd, eps);
                dq = dqRaw; dk = dkRaw;
            }
            var dxn1 = new double[n * d];
            ReferenceOps.LinearBackward(dq, a["xn1"], P(L.QProj), dxn1, G(L.QProj), Bg(L.QBias), n, d, h * hd);
            ReferenceOps.LinearBackward(dk, a["xn1"], P(L.KProj), dxn1, G(L.KProj), Bg(L.KBias), n, d, kv * hd);
            ReferenceOps.LinearBackward(dv, a["xn1"], P(L.VProj), dxn1, G(L.VProj), Bg(L.VBias), n, d, kv * hd);
            ReferenceOps.RmsNormBackward(dxn1, a["xin"], P(L.InputNorm), dx, G(L.InputNorm), n, d, eps);
        }
        ReferenceOps.EmbeddingBackward(activations.Tokens, dx, G(Layout.Embedding.Name), d);
        return grads;
    }
}
