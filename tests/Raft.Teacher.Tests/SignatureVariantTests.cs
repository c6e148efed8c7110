using Xunit.Abstractions;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using Raft.Kernels;
using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>
/// The signatures real exporters write (<see cref="SignatureVariants"/>), on the same random weights as an
/// <see cref="EngineTeacher"/>: the session must read each graph's inputs (not assume the engine's) and score, prefill,
/// decode and generate as the engine does — to fp32 rounding for fp32 boundaries, to the stated half-precision
/// tolerance for fp16/bf16 ones.
/// </summary>
public class SignatureVariantTests(ITestOutputHelper output)
{
    public enum Variant
    {
        /// <summary>Optimum with position_ids; inputs and outputs in another order.</summary>
        OptimumShuffled,
        /// <summary>Optimum without position_ids (derived from attention_mask inside).</summary>
        OptimumNoPositionIds,
        /// <summary>decoder_model_merged.onnx with use_cache_branch.</summary>
        MergedDecoder,
        /// <summary>fp16 past/present and logits.</summary>
        Fp16KvAndLogits,
        /// <summary>bf16 past/present and logits.</summary>
        Bf16KvAndLogits,
        /// <summary>GenAI: GroupQueryAttention, seqlens_k and total_sequence_length as inputs, no attention_mask nor position_ids.</summary>
        GenAiSeqlensInputs,
        /// <summary>GenAI model-builder style: GroupQueryAttention, seqlens_k computed from attention_mask.</summary>
        GenAiFromMask,
        /// <summary>GenAI with fp16 KV and logits.</summary>
        GenAiFp16,
        /// <summary>GenAI with bf16 KV and logits.</summary>
        GenAiBf16,
        /// <summary>GenAI on a Qwen3-style model (per-head q/k RMSNorm before the op's rotary) with yarn RoPE (scaled cos/sin caches).</summary>
        GenAiQwen3Yarn,
    }

    /// <summary>The relative logit tolerance (max |Δ| / max |logit|) per variant's boundary precision.</summary>
    private static double Tolerance(Variant v) => v switch
    {
        Variant.Fp16KvAndLogits or Variant.GenAiFp16 => 5e-3,
        Variant.Bf16KvAndLogits or Variant.GenAiBf16 => 3e-2,
        _ => 1e-5,
    };

    private static bool IsGenAi(Variant v) => v is Variant.GenAiSeqlensInputs or Variant.GenAiFromMask or Variant.GenAiFp16 or Variant.GenAiBf16 or Variant.GenAiQwen3Yarn;

    private static bool IsExact(Variant v) => Tolerance(v) < 1e-4;

    /// <summary>Writes the engine's export of (config, weights) rewritten to <paramref name="v"/> into <paramref name="dir"/>.</summary>
    internal static void Write(Variant v, ModelConfig config, TensorSet weights, string dir)
    {
        OnnxExporter.Export(config, weights, dir);
        var m = SignatureVariants.Load(dir);
        string file = OnnxExporter.ModelFile;
        switch (v)
        {
            case Variant.OptimumShuffled: SignatureVariants.Shuffle(m, seed: 5); break;
            case Variant.OptimumNoPositionIds: SignatureVariants.PositionsFromMask(m); break;
            case Variant.MergedDecoder:
                SignatureVariants.MergedDecoder(m);
                file = TeacherSession.MergedDecoderFile;
                File.Delete(Path.Combine(dir, OnnxExporter.ModelFile));
                break;
            case Variant.Fp16KvAndLogits: SignatureVariants.HalfBoundary(m, TensorProto.Types.DataType.Float16, kv: true, logits: true); break;
            case Variant.Bf16KvAndLogits: SignatureVariants.HalfBoundary(m, TensorProto.Types.DataType.Bfloat16, kv: true, logits: true); break;
            default:
                // the Qwen3 variant means something only if the exporter wrote its per-head norms
                Assert.Equal(v == Variant.GenAiQwen3Yarn, m.Graph.Node.Any(n => n.Output.Contains("l0.q_norm")));
                SignatureVariants.GroupQueryAttention(m, config, seqlensInputs: v != Variant.GenAiFromMask);
                if (v == Variant.GenAiFp16) SignatureVariants.HalfBoundary(m, TensorProto.Types.DataType.Float16, kv: true, logits: true);
                if (v == Variant.GenAiBf16) SignatureVariants.HalfBoundary(m, TensorProto.Types.DataType.Bfloat16, kv: true, logits: true);
                break;
        }
        SignatureVariants.Save(m, dir, file);
        if (IsGenAi(v))
        {
            // the model builder writes genai_config.json, not Hugging Face's config.json
            File.Delete(Path.Combine(dir, Checkpoint.ConfigFile));
            File.WriteAllText(Path.Combine(dir, GenAiConfig.FileName), GenAiJson(config));
        }
    }

    internal static string GenAiJson(ModelConfig c, string extraDecoderKey = "") => $$"""
        {
          "model": {
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "type": "{{c.ModelType}}",
            "context_length": {{c.MaxPositionEmbeddings}}, "vocab_size": {{c.VocabSize}},
            "decoder": {
              "session_options": { "log_id": "onnxruntime-genai", "provider_options": [] },
              "filename": "model.onnx", "head_size": {{c.HeadDim}}, "hidden_size": {{c.HiddenSize}},
              "num_attention_heads": {{c.NumAttentionHeads}}, "num_hidden_layers": {{c.NumHiddenLayers}}, "num_key_value_heads": {{c.KvHeads}},
              "inputs": { "input_ids": "input_ids", "attention_mask": "attention_mask",
                          "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value" },
              "outputs": { "logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value" }{{extraDecoderKey}}
            }
          },
          "search": { "do_sample": false, "max_length": {{c.MaxPositionEmbeddings}}, "num_beams": 1 }
        }
        """;

    /// <summary>Tiny's shape with head_dim 16 (GroupQueryAttention's CPU kernel takes multiples of 16): hidden 64, 4 heads over 2 KV heads.</summary>
    private static (ModelConfig Config, TensorSet Weights) Model(int seed, Variant v)
    {
        var c = Tiny(tied: false, bias: true, vocab: 37) with { HiddenSize = 64, IntermediateSize = 48 };
        if (v == Variant.GenAiQwen3Yarn)
            c = c with { ModelType = "qwen3", RopeScaling = new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 16 } };
        return (c, RandomParameters(c, seed));
    }

    [Theory]
    [InlineData(Variant.OptimumShuffled)]
    [InlineData(Variant.OptimumNoPositionIds)]
    [InlineData(Variant.MergedDecoder)]
    [InlineData(Variant.Fp16KvAndLogits)]
    [InlineData(Variant.Bf16KvAndLogits)]
    [InlineData(Variant.GenAiSeqlensInputs)]
    [InlineData(Variant.GenAiFromMask)]
    [InlineData(Variant.GenAiFp16)]
    [InlineData(Variant.GenAiBf16)]
    [InlineData(Variant.GenAiQwen3Yarn)]
    public void PrefillAndDecodeLogitsEqualTheEngine(Variant v)
    {
        var (config, weights) = Model(seed: 61, v);
        using var dir = new TempDirectory();
        Write(v, config, weights, dir.Path);
        var log = new List<string>();
        using var teacher = TeacherSession.Open(dir.Path, Cpu(log));
        Assert.Equal(config.NumHiddenLayers, teacher.NumLayers);
        Assert.Equal(config.VocabSize, teacher.VocabSize);
        Assert.Equal(config.MaxPositionEmbeddings, teacher.MaxPositions);
        Assert.Contains(teacher.Signature.Describe(), log.Single());
        var model = new LlamaModel(config, weights);
        int vocab = config.VocabSize;
        double tol = Tolerance(v), worst = 0;

        // a batch of 3 prefilled together (8 positions), then 6 decode steps through the cache
        const int batch = 3, prompt = 8, steps = 6;
        var rows = Enumerable.Range(0, batch).Select(b => RandomTokens(prompt + steps, vocab, seed: 70 + b)).ToArray();
        using var cache = teacher.CreateCache(batch);
        var ids = new long[batch * prompt];
        for (int b = 0; b < batch; b++) for (int i = 0; i < prompt; i++) ids[b * prompt + i] = rows[b][i];
        float[] got = teacher.Forward(ids, batch, prompt, cache);
        float[] want = model.Forward([.. rows.SelectMany(r => r[..prompt])], batch, prompt);
        worst = Math.Max(worst, Tolerances.MaxRelErrorFp32(got, want));
        for (int s = 0; s < steps; s++)
        {
            got = teacher.Forward([.. rows.Select(r => (long)r[prompt + s])], batch, 1, cache);
            int t = prompt + s + 1;
            float[] full = model.Forward([.. rows.SelectMany(r => r[..t])], batch, t);
            for (int b = 0; b < batch; b++)
                worst = Math.Max(worst, Tolerances.MaxRelErrorFp32(got.AsSpan(b * vocab, vocab), full.AsSpan((b * t + t - 1) * vocab, vocab)));
        }
        Assert.Equal(prompt + steps, cache.Length);
        output.WriteLine($"{v}: max relative logit error {worst:E2} (tolerance {tol:E1})");
        Assert.True(worst <= tol, $"{v}: max relative logit error {worst:E2} > {tol:E1}");
        if (!IsExact(v)) Assert.True(worst > 0, $"{v}: a half-precision boundary that changes nothing is not one");
    }

    [Theory]
    [InlineData(Variant.OptimumShuffled)]
    [InlineData(Variant.OptimumNoPositionIds)]
    [InlineData(Variant.MergedDecoder)]
    [InlineData(Variant.Fp16KvAndLogits)]
    [InlineData(Variant.Bf16KvAndLogits)]
    [InlineData(Variant.GenAiSeqlensInputs)]
    [InlineData(Variant.GenAiFromMask)]
    [InlineData(Variant.GenAiFp16)]
    [InlineData(Variant.GenAiBf16)]
    [InlineData(Variant.GenAiQwen3Yarn)]
    public void ScoresEqualTheEngineTeacher(Variant v)
    {
        var (config, weights) = Model(seed: 83, v);
        using var dir = new TempDirectory();
        Write(v, config, weights, dir.Path);
        using var session = TeacherSession.Open(dir.Path, Cpu());
        var kernels = new CpuKernels(1);
        var scorer = new TeacherScorer(session, kernels);
        var engine = new EngineTeacher(new LlamaModel(config, weights), kernels);
        var model = new LlamaModel(config, weights);
        int vocab = config.VocabSize;
        int[] cl = [5, 2, 9], rl = [7, 4, 3];
        var contexts = cl.Select((n, i) => RandomTokens(n, vocab, 400 + i)).ToArray();
        var rollouts = rl.Select((n, i) => RandomTokens(n, vocab, 500 + i)).ToArray();
        var settings = new DistillSettings(6, 1.5f);
        var want = engine.ScoreEach(contexts, rollouts, settings);
        double tol = Tolerance(v);
        // one chunk, and chunks of 4 and 1 positions (the cache carries the rest)
        foreach (long budget in new[] { TeacherScorer.DefaultMemoryBudgetBytes, 3L * 4 * vocab * 4, 1 })
        {
            var got = scorer.ScoreBatch(contexts, rollouts, settings, budget);
            for (int b = 0; b < contexts.Length; b++)
            {
                int[] all = [.. contexts[b], .. rollouts[b]];
                float[] logits = model.Forward(all, 1, all.Length);
                int k = settings.TopK;
                for (int r = 0; r < rl[b]; r++)
                {
                    var rowLogits = logits.AsSpan((cl[b] - 1 + r) * vocab, vocab);
                    double scale = 0;
                    foreach (float x in rowLogits) scale = Math.Max(scale, Math.Abs(x));
                    for (int j = 0; j < k; j++)
                    {
                        int gi = got[b].Indices[r * k + j], wi = want[b].Indices[r * k + j];
                        string where = $"{v}, budget {budget}, pair {b}, row {r}, rank {j}";
                        if (IsExact(v)) Assert.True(gi == wi, $"{where}: id {gi} vs {wi}");
                        else Assert.True(gi == wi || Math.Abs(rowLogits[gi] - rowLogits[wi]) <= 2 * tol * scale,
                            $"{where}: id {gi} vs {wi}, engine logits {rowLogits[gi]} vs {rowLogits[wi]}: not a near-tie");
                        if (gi == wi)
                        {
                            double pg = got[b].Probs[r * k + j], pw = want[b].Probs[r * k + j];
                            // τ-softmax over K: a logit error ε·scale moves a probability by at most ~2ε·scale/τ relative
                            double ptol = IsExact(v) ? 1e-4 : 4 * tol * scale / settings.Temperature;
                            Assert.True(Math.Abs(pg - pw) <= ptol * Math.Max(pw, 1e-3) + 1e-6, $"{where}: prob {pg} vs {pw} (tolerance {ptol:E1} relative)");
                        }
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(Variant.OptimumShuffled)]
    [InlineData(Variant.OptimumNoPositionIds)]
    [InlineData(Variant.MergedDecoder)]
    [InlineData(Variant.Fp16KvAndLogits)]
    [InlineData(Variant.Bf16KvAndLogits)]
    [InlineData(Variant.GenAiSeqlensInputs)]
    [InlineData(Variant.GenAiFromMask)]
    [InlineData(Variant.GenAiFp16)]
    [InlineData(Variant.GenAiBf16)]
    [InlineData(Variant.GenAiQwen3Yarn)]
    public void GreedyGenerationsEqualTheEngine(Variant v)
    {
        var (config, weights) = Model(seed: 97, v);
        using var dir = new TempDirectory();
        Write(v, config, weights, dir.Path);
        using var session = TeacherSession.Open(dir.Path, Cpu());
        var model = new LlamaModel(config, weights);
        int vocab = config.VocabSize;
        var prompts = new[] { 4, 6, 4, 1, 9, 6 }.Select((n, i) => RandomTokens(n, vocab, seed: 600 + i)).ToArray();
        var options = SamplingOptions.Greedy with { MaxNewTokens = 14 };
        var want = Generator.Generate(model, prompts, options);
        // a prefill budget of 4 positions: the prompts go through the cache in chunks too (2 positions for pairs)
        var got = TeacherGenerator.Generate(session, prompts, options, 0, 64, prefillBudgetBytes: 4L * vocab * 4);
        double tol = Tolerance(v);
        int compared = 0, total = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            total += want[i].Tokens.Length;
            for (int j = 0; j < want[i].Tokens.Length; j++)
            {
                if (got[i].Tokens[j] != want[i].Tokens[j])
                {
                    Assert.False(IsExact(v), $"{v}, sequence {i}, token {j}: {got[i].Tokens[j]} vs {want[i].Tokens[j]}");
                    // a half-precision teacher may part from the engine only at a near-tie of the engine's own logits
                    int[] prefix = [.. prompts[i], .. want[i].Tokens[..j]];
                    float[] logits = model.Forward(prefix, 1, prefix.Length).AsSpan((prefix.Length - 1) * vocab, vocab).ToArray();
                    double scale = logits.Max(Math.Abs);
                    Assert.True(logits[want[i].Tokens[j]] - logits[got[i].Tokens[j]] <= 2 * tol * scale,
                        $"{v}, sequence {i}, token {j}: {got[i].Tokens[j]} (engine logit {logits[got[i].Tokens[j]]}) vs {want[i].Tokens[j]} ({logits[want[i].Tokens[j]]}): not a near-tie");
                    break;
                }
                float lpTol = IsExact(v) ? 1e-4f : (float)(4 * tol * 10);
                Assert.True(Math.Abs(got[i].ModelLogProbs[j] - want[i].ModelLogProbs[j]) <= lpTol,
                    $"{v}, sequence {i}, token {j}: model log-prob {got[i].ModelLogProbs[j]} vs {want[i].ModelLogProbs[j]}");
                compared++;
            }
            if (IsExact(v)) Assert.Equal(want[i].Reason, got[i].Reason);
        }
        output.WriteLine($"{v}: {compared} of {total} greedy tokens equal to the engine's before any near-tie parted them");
        Assert.True(compared * 2 >= total, $"{v}: only {compared} of {total} tokens agreed before a near-tie parted them");
        Assert.True(want.Select(g => string.Join(",", g.Tokens)).Distinct().Count() > 1, "the continuations are not all the same");
    }

    [Theory]
    [InlineData(Variant.OptimumShuffled)]
    [InlineData(Variant.OptimumNoPositionIds)]
    [InlineData(Variant.MergedDecoder)]
    [InlineData(Variant.GenAiSeqlensInputs)]
    [InlineData(Variant.GenAiFromMask)]
    [InlineData(Variant.GenAiQwen3Yarn)]
    public void SampledGenerationsWithASeedEqualTheEngine(Variant v)
    {
        var (config, weights) = Model(seed: 101, v);
        using var dir = new TempDirectory();
        Write(v, config, weights, dir.Path);
        using var session = TeacherSession.Open(dir.Path, Cpu());
        var model = new LlamaModel(config, weights);
        var prompts = new[] { 3, 7, 3, 2, 7 }.Select((n, i) => RandomTokens(n, config.VocabSize, seed: 700 + i)).ToArray();
        var options = new SamplingOptions { Temperature = 0.9f, TopK = 20, TopP = 0.95f, MaxNewTokens = 12, Seed = 4321, StopTokenIds = [5] };
        var want = Generator.Generate(model, prompts, options, firstSequenceIndex: 17);
        var got = TeacherGenerator.Generate(session, prompts, options, 17, 64, prefillBudgetBytes: 4L * config.VocabSize * 4);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.True(want[i].Tokens.SequenceEqual(got[i].Tokens), $"{v}, sequence {i}: [{string.Join(", ", got[i].Tokens)}] vs [{string.Join(", ", want[i].Tokens)}]");
            Assert.Equal(want[i].Reason, got[i].Reason);
            for (int j = 0; j < want[i].Tokens.Length; j++)
                Assert.True(Math.Abs(want[i].LogProbs[j] - got[i].LogProbs[j]) <= 1e-4, $"{v}, sequence {i}, token {j}: log-prob {got[i].LogProbs[j]} vs {want[i].LogProbs[j]}");
        }
        Assert.True(want.Select(g => string.Join(",", g.Tokens)).Distinct().Count() > 1, "the samples are not all the same");
    }
}
