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

    private LoraAdapters? _lora;

    /// <summary>
    /// Adds LoRA to the specification: A and B are copied to double into <see cref="Parameters"/> under their PEFT names
    /// (so <see cref="Backward"/> returns their gradients), and each wrapped projection computes
    /// y = W·x (+ b) + (α/r)·B·(A·xd), xd = x ⊙ keep / (1 − p) with the adapters' own dropout mask
    /// (<see cref="LoraAdapters.Keeps"/>) when they are in training mode, xd = x otherwise. <see cref="LoraAdapters.Enabled"/>
    /// and the mode are read at each forward.
    /// </summary>
    public void AttachLora(LoraAdapters adapters)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        foreach (var t in adapters.Parameters.Tensors) Parameters[t.Name] = Array.ConvertAll(t.Data, v => (double)v);
        _lora = adapters;
    }

    private double[] Lin(Dictionary<string, double[]> a, int layer, LoraTarget target, double[] x, double[] w, double[]? b, int n, int inDim, int outDim)
    {
        var y = ReferenceOps.Linear(x, w, b, n, inDim, outDim);
        var m = _lora is { Enabled: true } ? _lora.Module(layer, target) : null;
        if (m is null) return y;
        var xd = x;
        if (_lora!.Training && _lora.Config.Dropout > 0)
        {
            xd = new double[x.Length];
            double keepScale = 1.0 / (1.0 - _lora.Config.Dropout);
            for (int i = 0; i < n * inDim; i++) xd[i] = _lora.Keeps(layer, target, i) ? x[i] * keepScale : 0.0;
        }
        var u = ReferenceOps.Linear(xd, Parameters[m.A.Name], null, n, inDim, _lora.Config.Rank);
        var bu = ReferenceOps.Linear(u, Parameters[m.B.Name], null, n, _lora.Config.Rank, outDim);
        for (int i = 0; i < y.Length; i++) y[i] += _lora.Config.Scale * bu[i];
        a[$"lora{(int)target}.xd"] = xd;
        a[$"lora{(int)target}.u"] = u;
        return y;
    }

    private void LinBackward(Dictionary<string, double[]> a, Dictionary<string, double[]> grads, int layer, LoraTarget target,
        double[] dy, double[] x, double[] dx, int n, int inDim, int outDim)
    {
        if (!a.TryGetValue($"lora{(int)target}.u", out var u)) return;
        var m = _lora!.Module(layer, target)!;
        var xd = a[$"lora{(int)target}.xd"];
        int r = _lora.Config.Rank;
        double s = _lora.Config.Scale;
        var sdy = Array.ConvertAll(dy, v => s * v);
        var du = new double[n * r];
        ReferenceOps.LinearBackward(sdy, u, Parameters[m.B.Name], du, grads[m.B.Name], null, n, r, outDim);
        var dxd = new double[n * inDim];
        ReferenceOps.LinearBackward(du, xd, Parameters[m.A.Name], dxd, grads[m.A.Name], null, n, inDim, r);
        bool dropout = !ReferenceEquals(xd, x);
        double keepScale = 1.0 / (1.0 - _lora.Config.Dropout);
        for (int i = 0; i < dxd.Length; i++)
            dx[i] += dropout ? (_lora.Keeps(layer, target, i) ? dxd[i] * keepScale : 0.0) : dxd[i];
    }

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
            int li = L.Index;
            var q = Lin(a, li, LoraTarget.QProj, xn1, P(L.QProj), B(L.QBias), n, d, h * hd);
            var k = Lin(a, li, LoraTarget.KProj, xn1, P(L.KProj), B(L.KBias), n, d, kv * hd);
            var v = Lin(a, li, LoraTarget.VProj, xn1, P(L.VProj), B(L.VBias), n, d, kv * hd);
            a["qraw"] = q; a["kraw"] = k;
            if (L.QNorm is not null)
            {
                q = ReferenceOps.RmsNorm(q, P(L.QNorm), n * h, hd, eps);
                k = ReferenceOps.RmsNorm(k, P(L.KNorm!), n * kv, hd, eps);
            }
            var qr = ReferenceOps.Rope(q, pos, n, h, hd, inv, ropeScale);
            var kr = ReferenceOps.Rope(k, pos, n, kv, hd, inv, ropeScale);
            var att = ReferenceOps.Attention(qr, kr, v, batch, seqLen, h, kv, hd, L.Features.SlidingWindow ?? 0);
            var xmid = ReferenceOps.Add(x, Lin(a, li, LoraTarget.OProj, att, P(L.OProj), B(L.OBias), n, h * hd, d));
            var xn2 = ReferenceOps.RmsNorm(xmid, P(L.PostAttentionNorm), n, d, eps);
            var g = Lin(a, li, LoraTarget.GateProj, xn2, P(L.GateProj), B(L.GateBias), n, d, f);
            var u = Lin(a, li, LoraTarget.UpProj, xn2, P(L.UpProj), B(L.UpBias), n, d, f);
            var hh = ReferenceOps.SwiGlu(g, u);
            x = ReferenceOps.Add(xmid, Lin(a, li, LoraTarget.DownProj, hh, P(L.DownProj), B(L.DownBias), n, f, d));
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
            LinBackward(a, grads, l, LoraTarget.DownProj, dx, a["h"], dh, n, f, d);
            var dg = new double[n * f];
            var du = new double[n * f];
            ReferenceOps.SwiGluBackward(dh, a["g"], a["u"], dg, du);
            var dxn2 = new double[n * d];
            ReferenceOps.LinearBackward(dg, a["xn2"], P(L.GateProj), dxn2, G(L.GateProj), Bg(L.GateBias), n, d, f);
            ReferenceOps.LinearBackward(du, a["xn2"], P(L.UpProj), dxn2, G(L.UpProj), Bg(L.UpBias), n, d, f);
            LinBackward(a, grads, l, LoraTarget.GateProj, dg, a["xn2"], dxn2, n, d, f);
            LinBackward(a, grads, l, LoraTarget.UpProj, du, a["xn2"], dxn2, n, d, f);
            ReferenceOps.RmsNormBackward(dxn2, a["xmid"], P(L.PostAttentionNorm), dx, G(L.PostAttentionNorm), n, d, eps);
            // attention
            var datt = new double[n * h * hd];
            ReferenceOps.LinearBackward(dx, a["att"], P(L.OProj), datt, G(L.OProj), Bg(L.OBias), n, h * hd, d);
            LinBackward(a, grads, l, LoraTarget.OProj, dx, a["att"], datt, n, h * hd, d);
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
            LinBackward(a, grads, l, LoraTarget.QProj, dq, a["xn1"], dxn1, n, d, h * hd);
            LinBackward(a, grads, l, LoraTarget.KProj, dk, a["xn1"], dxn1, n, d, kv * hd);
            LinBackward(a, grads, l, LoraTarget.VProj, dv, a["xn1"], dxn1, n, d, kv * hd);
            ReferenceOps.RmsNormBackward(dxn1, a["xin"], P(L.InputNorm), dx, G(L.InputNorm), n, d, eps);
        }
        ReferenceOps.EmbeddingBackward(activations.Tokens, dx, G(Layout.Embedding.Name), d);
        return grads;
    }
}
