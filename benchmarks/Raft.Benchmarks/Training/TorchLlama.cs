using Raft.Benchmarks.Distill;
using Raft.Model;
using Tensor = TorchSharp.torch.Tensor;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Raft.Benchmarks.Training;

/// <summary>
/// The same Llama decoder in libtorch eager mode (TorchSharp, CPU, fp32), written as Hugging Face's
/// <c>LlamaForCausalLM</c> computes it, with the weights copied from the problem's <see cref="Raft.Model.TensorSet"/>:
/// <code>
/// x = embed[tokens]                                          # [B, T, C]
/// per layer:
///   h = rms(x) * ln1                                         # x * rsqrt(mean(x²) + eps)
///   q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ  → [B, heads, T, hd]
///   q, k = q cos + rotate_half(q) sin, k cos + rotate_half(k) sin   # emb = cat(freqs, freqs)
///   k, v = repeat_interleave(k, v, H / KV, dim = 1)          # repeat_kv
///   x = x + sdpa(q, k, v, is_causal) Woᵀ
///   h = rms(x) * ln2
///   x = x + (silu(h Wgᵀ) * (h Wuᵀ)) Wdᵀ
/// logits = (rms(x) * norm) lm_headᵀ                          # lm_head = embed when tied
/// loss = cross_entropy(logits.view(-1, V), targets)          # mean
/// </code>
/// A step is <c>zero_grad(); loss.backward(); AdamW.step()</c> with <c>torch.optim.AdamW</c> in two parameter
/// groups: weight decay on the 2-D tensors, none on the norm weights (the engine's <see cref="AdamW.IsDecayed"/> rule).
/// Threads: <c>torch.set_num_threads(Environment.ProcessorCount)</c>. Every temporary of a step is freed by a
/// dispose scope at the end of the step, as Python's reference counting would.
/// </summary>
public sealed class TorchLlama : IDisposable
{
    private sealed record Layer(Parameter Ln1, Parameter Wq, Parameter Wk, Parameter Wv, Parameter Wo,
        Parameter Ln2, Parameter Wg, Parameter Wu, Parameter Wd);

    private readonly TrainingCase _c;
    private readonly List<(string Name, Parameter P)> _params = [];
    private readonly Parameter _embed, _norm, _lmHead;
    private readonly Layer[] _layers;
    private readonly Tensor _tokens, _targets, _cos, _sin;
    private readonly optim.Optimizer _opt;
    private readonly double _eps;

    /// <summary>Copies the problem's initial weights and tokens into torch tensors and creates the optimizer.</summary>
    public TorchLlama(TrainingProblem p)
    {
        TorchNativeFix.Apply();
        torch.set_num_threads(Environment.ProcessorCount);
        _c = p.Case;
        var cfg = _c.Config;
        if (cfg.QkvBias) throw new NotSupportedException("the torch mirror has no q/k/v bias.");
        var layout = DecoderLayout.For(cfg);
        if (layout.Rope.Type != RopeType.Default || layout.Layers.Any(l => l.Features != new DecoderLayerFeatures(QkvBias: false)))
            throw new NotSupportedException("the torch mirror computes the plain Llama decoder only (default RoPE, no biases, q/k norm or window).");
        _eps = cfg.RmsNormEps;
        Parameter P(string name)
        {
            var t = p.InitialWeights[name];
            var par = new Parameter(torch.tensor(t.Data, t.Shape.Select(s => (long)s).ToArray()), requires_grad: true);
            _params.Add((name, par));
            return par;
        }
        _embed = P("model.embed_tokens.weight");
        _layers = new Layer[cfg.NumHiddenLayers];
        for (int i = 0; i < _layers.Length; i++)
        {
            string l = $"model.layers.{i}.";
            _layers[i] = new Layer(P(l + "input_layernorm.weight"), P(l + "self_attn.q_proj.weight"), P(l + "self_attn.k_proj.weight"),
                P(l + "self_attn.v_proj.weight"), P(l + "self_attn.o_proj.weight"), P(l + "post_attention_layernorm.weight"),
                P(l + "mlp.gate_proj.weight"), P(l + "mlp.up_proj.weight"), P(l + "mlp.down_proj.weight"));
        }
        _norm = P("model.norm.weight");
        _lmHead = cfg.TieWordEmbeddings ? _embed : P("lm_head.weight");

        _tokens = torch.tensor(p.Inputs.Select(x => (long)x).ToArray(), [_c.Batch, _c.SeqLen]);
        _targets = torch.tensor(p.Targets.Select(x => (long)x).ToArray(), [_c.Tokens]);

        // rotary tables as transformers' LlamaRotaryEmbedding builds them (fp32): [T, hd]
        int hd = cfg.HeadDim;
        using (var scope = torch.NewDisposeScope())
        {
            var invFreq = 1.0f / torch.pow(torch.tensor((float)cfg.RopeTheta), torch.arange(0, hd, 2, ScalarType.Int64).to(ScalarType.Float32) / hd);
            var pos = torch.arange(0, _c.SeqLen, ScalarType.Int64).to(ScalarType.Float32);
            var freqs = torch.outer(pos, invFreq);
            var emb = torch.cat([freqs, freqs], -1);
            _cos = emb.cos().MoveToOuterDisposeScope();
            _sin = emb.sin().MoveToOuterDisposeScope();
        }

        var decay = _params.Where(x => x.P.dim() > 1 && !x.Name.EndsWith("norm.weight", StringComparison.Ordinal)).Select(x => x.P).ToList();
        var noDecay = _params.Where(x => !(x.P.dim() > 1 && !x.Name.EndsWith("norm.weight", StringComparison.Ordinal))).Select(x => x.P).ToList();
        _opt = torch.optim.AdamW(
            [
                new TorchSharp.Modules.AdamW.ParamGroup(decay, lr: TrainingShapes.LearningRate, beta1: TrainingShapes.Beta1, beta2: TrainingShapes.Beta2,
                    eps: TrainingShapes.Epsilon, weight_decay: TrainingShapes.WeightDecay),
                new TorchSharp.Modules.AdamW.ParamGroup(noDecay, lr: TrainingShapes.LearningRate, beta1: TrainingShapes.Beta1, beta2: TrainingShapes.Beta2,
                    eps: TrainingShapes.Epsilon, weight_decay: 0.0),
            ],
            lr: TrainingShapes.LearningRate, beta1: TrainingShapes.Beta1, beta2: TrainingShapes.Beta2,
            eps: TrainingShapes.Epsilon, weight_decay: TrainingShapes.WeightDecay);
    }

    private Tensor Rms(Tensor x, Tensor w) =>
        w * (x * torch.rsqrt(x.pow(2).mean([-1], keepdim: true) + _eps));

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return torch.cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }

    /// <summary>Logits [B, T, V] of the current weights (autograd records when enabled).</summary>
    private Tensor Forward()
    {
        var cfg = _c.Config;
        long b = _c.Batch, t = _c.SeqLen, h = cfg.NumAttentionHeads, kv = cfg.KvHeads, hd = cfg.HeadDim;
        var x = _embed.index_select(0, _tokens.view(-1)).view(b, t, -1);
        foreach (var l in _layers)
        {
            var n1 = Rms(x, l.Ln1);
            var q = F.linear(n1, l.Wq).view(b, t, h, hd).transpose(1, 2);
            var k = F.linear(n1, l.Wk).view(b, t, kv, hd).transpose(1, 2);
            var v = F.linear(n1, l.Wv).view(b, t, kv, hd).transpose(1, 2);
            q = q * _cos + RotateHalf(q) * _sin;
            k = k * _cos + RotateHalf(k) * _sin;
            if (h != kv)
            {
                k = k.repeat_interleave(h / kv, 1);
                v = v.repeat_interleave(h / kv, 1);
            }
            var att = F.scaled_dot_product_attention(q, k, v, null, 0.0, true);
            x = x + F.linear(att.transpose(1, 2).reshape(b, t, h * hd), l.Wo);
            var n2 = Rms(x, l.Ln2);
            x = x + F.linear(F.silu(F.linear(n2, l.Wg)) * F.linear(n2, l.Wu), l.Wd);
        }
        return F.linear(Rms(x, _norm), _lmHead);
    }

    /// <summary>Logits [B·T, V] of the current weights, copied out (no autograd).</summary>
    public float[] Logits()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return Forward().contiguous().data<float>().ToArray();
    }

    /// <summary>Zero grad, forward, mean cross-entropy, backward (gradients left in the parameters); returns the loss.</summary>
    public double ForwardBackward()
    {
        using var scope = torch.NewDisposeScope();
        _opt.zero_grad();
        var logits = Forward();
        var loss = F.cross_entropy(logits.view(-1, _c.Config.VocabSize), _targets);
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>The AdamW step with the gradients of the last <see cref="ForwardBackward"/>.</summary>
    public void Update()
    {
        using var scope = torch.NewDisposeScope();
        _opt.step();
    }

    /// <summary>One full training step (zero_grad, forward, loss, backward, AdamW step); returns the loss before the update.</summary>
    public double Step()
    {
        double loss = ForwardBackward();
        using var scope = torch.NewDisposeScope();
        _opt.step();
        return loss;
    }

    /// <summary>The gradient of the named parameter after <see cref="ForwardBackward"/>, copied out.</summary>
    public float[] Gradient(string name)
    {
        using var scope = torch.NewDisposeScope();
        var p = _params.First(x => x.Name == name).P;
        return p.grad is { } g ? g.contiguous().data<float>().ToArray() : new float[p.numel()];
    }

    /// <summary>The current value of the named parameter, copied out.</summary>
    public float[] ParameterData(string name)
    {
        using var scope = torch.NewDisposeScope();
        return _params.First(x => x.Name == name).P.detach().contiguous().data<float>().ToArray();
    }

    /// <summary>The libtorch version string.</summary>
    public static string Version
    {
        get
        {
            TorchNativeFix.Apply();
            return torch.__version__;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _opt.Dispose();
        foreach (var (_, p) in _params) p.Dispose();
        _tokens.Dispose(); _targets.Dispose(); _cos.Dispose(); _sin.Dispose();
    }
}
