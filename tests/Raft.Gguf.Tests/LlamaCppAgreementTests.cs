using System.Text.Json;
using Raft.Model;
using Raft.Model.Gguf;
using Raft.Model.Tokenization;
using Xunit.Abstractions;

namespace Raft.Gguf.Tests;

/// <summary>
/// llama.cpp as an independent implementation: the engine's GGUF export of a random checkpoint is loaded by llama.cpp,
/// whose logits for a token sequence are compared with the engine's <see cref="LlamaModel"/> forward, and whose
/// tokenizer (built from the exported metadata alone) with the engine's tokenizer.
/// </summary>
public class LlamaCppAgreementTests(ITestOutputHelper output)
{
    /// <summary>One model family of the agreement table: a config and the fetched tokenizer folder it goes with.</summary>
    public sealed record Family(string TokenizerDir, string[] Files, ModelConfig Config);

    private static readonly Dictionary<string, Family> Families = new()
    {
        // Llama 2 shapes, SentencePiece tokenizer.model, untied lm_head, GQA 4/2
        ["llama-spm"] = new("llama2", ["tokenizer.model"], new ModelConfig
        {
            ModelType = "llama", HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 2, VocabSize = 32000, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 256,
        }),
        // Llama 3 byte-level BPE, tied embeddings, GQA 4/1, head_dim decoupled from hidden/heads, q/k/v and o_proj bias
        // (attention_bias), rope_scaling llama3 (the rope_freqs tensor; every pair's band: kept, smoothed, interpolated)
        ["llama3-bpe"] = new("llama3", ["tokenizer.json", "tokenizer_config.json"], new ModelConfig
        {
            ModelType = "llama", HiddenSize = 48, IntermediateSize = 80, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 1, HeadDimOverride = 16, VocabSize = 128256, RmsNormEps = 1e-5, RopeTheta = 500000,
            MaxPositionEmbeddings = 256, TieWordEmbeddings = true, AttentionBias = true,
            RopeScaling = new RopeScalingConfig { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 },
        }),
        // Llama with MLP biases and linear rope scaling (rope.scaling.type linear), Llama 2's tokenizer
        ["llama-mlpbias-linear"] = new("llama2", ["tokenizer.model"], new ModelConfig
        {
            ModelType = "llama", HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 4, VocabSize = 32000, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 256,
            MlpBias = true, RopeScaling = new RopeScalingConfig { RopeType = "linear", Factor = 4 },
        }),
        // Mistral without a window (config.json's "sliding_window": null): llama.cpp's llama architecture, q/k permuted
        ["mistral"] = new("llama2", ["tokenizer.model"], new ModelConfig
        {
            ModelType = "mistral", HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 2, VocabSize = 32000, RmsNormEps = 1e-5, RopeTheta = 1000000, MaxPositionEmbeddings = 256,
        }),
        // Qwen2 with q/k/v bias, untied, GQA 4/2, embedding padded past the tokenizer (151936 rows, 151669 tokens)
        ["qwen2-bias"] = new("qwen3", ["tokenizer.json", "tokenizer_config.json"], new ModelConfig
        {
            ModelType = "qwen2", HiddenSize = 64, IntermediateSize = 112, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 2, VocabSize = 151936, RmsNormEps = 1e-6, RopeTheta = 1000000, MaxPositionEmbeddings = 256,
        }),
        // Qwen2 with yarn rope scaling (factor 4 over an original context of 64), tied
        ["qwen2-yarn"] = new("qwen3", ["tokenizer.json", "tokenizer_config.json"], new ModelConfig
        {
            ModelType = "qwen2", HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 2,
            NumKeyValueHeads = 1, VocabSize = 151936, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 256,
            TieWordEmbeddings = true, RopeScaling = new RopeScalingConfig { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 64 },
        }),
        // Qwen3: per-head q/k RMSNorm before rope, head_dim 16 decoupled from hidden 48 / 4 heads, GQA 4/2, tied
        ["qwen3"] = new("qwen3", ["tokenizer.json", "tokenizer_config.json"], new ModelConfig
        {
            ModelType = "qwen3", HiddenSize = 48, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 4,
            NumKeyValueHeads = 2, HeadDimOverride = 16, VocabSize = 151936, RmsNormEps = 1e-6, RopeTheta = 1000000,
            MaxPositionEmbeddings = 256, TieWordEmbeddings = true,
        }),
    };

    /// <summary>Relative-error bounds per stored type: F32 the issue's 1e-3; F16/BF16 where llama.cpp also rounds the activations to that type.</summary>
    private static double Tolerance(GgmlType t) => t switch { GgmlType.F32 => 1e-3, GgmlType.F16 => 1e-2, _ => 5e-2 };

    public static TheoryData<string, GgmlType> Cases()
    {
        var d = new TheoryData<string, GgmlType>();
        foreach (string f in Families.Keys) d.Add(f, GgmlType.F32);
        foreach (string f in new[] { "llama-spm", "llama3-bpe", "qwen2-bias", "qwen3" })
        {
            d.Add(f, GgmlType.F16);
            d.Add(f, GgmlType.BF16);
        }
        return d;
    }

    /// <summary>A checkpoint folder: config.json, model.safetensors of random weights, the family's tokenizer files.</summary>
    private static (ModelConfig, TensorSet) WriteCheckpoint(Family f, string dir, int seed)
    {
        var weights = RandomData.RandomParameters(f.Config, seed, scale: 0.3);
        Checkpoint.Save(dir, f.Config, weights);
        if (f.Config is { ModelType: "mistral", SlidingWindow: null })
        {
            // an absent key means Hugging Face's default window of 4096: write the null that turns it off
            string path = Path.Combine(dir, Checkpoint.ConfigFile);
            File.WriteAllText(path, File.ReadAllText(path).TrimEnd().TrimEnd('}') + ", \"sliding_window\": null}");
        }
        TokenizerDirs.CopyInto(f.TokenizerDir, dir, f.Files);
        return (f.Config, weights);
    }

    /// <summary>The weights as the file holds them: matrices rounded to <paramref name="t"/>, vectors kept in fp32.</summary>
    private static TensorSet AsStored(TensorSet w, GgmlType t)
    {
        if (t == GgmlType.F32) return w;
        var r = new TensorSet();
        foreach (var x in w.Tensors)
        {
            var data = (float[])x.Data.Clone();
            if (x.Shape.Length == 2)
                for (int i = 0; i < data.Length; i++)
                    data[i] = t == GgmlType.F16 ? (float)(Half)data[i] : SafeTensorDTypes.BFloat16ToSingle(SafeTensorDTypes.SingleToBFloat16(data[i]));
            r.Add(new Tensor(x.Name, x.Shape, data));
        }
        return r;
    }

    [LlamaCppTheory("llama2/tokenizer.model", "llama3/tokenizer.json", "qwen3/tokenizer.json")]
    [MemberData(nameof(Cases))]
    public void LlamaCpp_logits_agree_with_the_engine_forward(string family, GgmlType type)
    {
        var f = Families[family];
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "model");
        int seed = 7919 * (family.Length + 3) + (int)type;
        var (config, weights) = WriteCheckpoint(f, model, seed);
        string gguf = dir.File("model.gguf");
        var result = GgufExporter.Export(model, gguf, type);
        Assert.Equal(config.ModelType == "mistral" ? "llama" : config.ModelType, result.Architecture);

        var tokenizer = TokenizerLoader.FromDirectory(model);
        int[] tokens = RandomData.RandomTokens(29, tokenizer.VocabSize, seed + 1);
        var engine = new LlamaModel(config, AsStored(weights, type)) { Threads = 2 };
        float[] expected = engine.Forward(tokens, 1, tokens.Length);

        float[] actual = LlamaCpp.Logits(gguf, tokens, out int vocab);
        Assert.Equal(config.VocabSize, vocab);
        double rel = Tolerances.MaxRelErrorFp32(actual, expected);
        output.WriteLine($"{family} {type}: max |llama.cpp − engine| / max |engine| = {rel:E2} over {tokens.Length}×{vocab} logits");
        Console.WriteLine($"[gguf-agreement] {family} {type}: rel err {rel:E2}");
        Assert.True(rel < Tolerance(type), $"{family} {type}: relative error {rel:E3} ≥ {Tolerance(type):E0}. {LlamaCpp.RecentLog()}");
    }

    [LlamaCppTheory("llama2/tokenizer.model", "llama3/tokenizer.json", "qwen3/tokenizer.json")]
    [InlineData("llama-spm")]
    [InlineData("llama3-bpe")]
    [InlineData("qwen2-bias")]
    [InlineData("qwen3")]
    public void Without_the_rope_permutation_llama_cpp_disagrees(string family)
    {
        // the comparison above can fail: a llama export whose q/k rows are left in Hugging Face's order (or a qwen2
        // export with them permuted) computes other attention scores, and llama.cpp's logits move far past the tolerance
        var f = Families[family];
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "model");
        var (config, weights) = WriteCheckpoint(f, model, 31);
        var vocab = GgufVocabulary.FromDirectory(model, config.VocabSize);
        var (md, tensors) = GgufExporter.Build(config, weights, vocab, GgmlType.F32);
        int hd = config.HeadDim;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            bool q = t.Name.EndsWith("attn_q.weight", StringComparison.Ordinal), k = t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal);
            if (!q && !k) continue;
            int heads = q ? config.NumAttentionHeads : config.KvHeads;
            // llama: undo the permutation by taking the checkpoint's rows; qwen2: permute although NEOX needs none
            float[] wrong = config.ModelType == "llama"
                ? weights[$"model.layers.{t.Name.Split('.')[1]}.self_attn.{(q ? "q" : "k")}_proj.weight"].Data
                : GgufExporter.PermuteHalvesToPairs(t.Data, heads, hd, config.HiddenSize);
            tensors[i] = new GgufTensor(t.Name, t.Dims, t.Type, wrong);
        }
        string gguf = dir.File("wrong.gguf");
        GgufWriter.Write(gguf, md, tensors);
        int[] tokens = RandomData.RandomTokens(29, vocab.Tokens.Length - 300, 5);
        float[] expected = new LlamaModel(config, weights) { Threads = 2 }.Forward(tokens, 1, tokens.Length);
        double rel = Tolerances.MaxRelErrorFp32(LlamaCpp.Logits(gguf, tokens, out _), expected);
        output.WriteLine($"{family} with the wrong q/k row order: rel err {rel:E2}");
        Assert.True(rel > 1e-2, $"{family}: the wrong row order still agrees ({rel:E2}): the agreement test would not see a permutation bug.");
    }

    [LlamaCppTheory("llama2/tokenizer.model", "llama3/tokenizer.json", "qwen3/tokenizer.json")]
    [InlineData("llama3-bpe")]
    [InlineData("llama-mlpbias-linear")]
    [InlineData("qwen2-yarn")]
    public void LlamaCpp_applies_the_rope_scaling_the_agreement_depends_on(string family)
    {
        // the same export compared with the engine's forward without rope_scaling: far apart, so the agreement above
        // shows that llama.cpp computed the scaled frequencies (rope_freqs, linear, yarn), not the plain ones
        var f = Families[family];
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "model");
        var (config, weights) = WriteCheckpoint(f, model, 11);
        string gguf = dir.File("model.gguf");
        GgufExporter.Export(model, gguf);
        int[] tokens = RandomData.RandomTokens(29, 30000, 12);
        float[] cpp = LlamaCpp.Logits(gguf, tokens, out _);
        float[] scaled = new LlamaModel(config, weights) { Threads = 2 }.Forward(tokens, 1, tokens.Length);
        float[] plain = new LlamaModel(config with { RopeScaling = null }, weights) { Threads = 2 }.Forward(tokens, 1, tokens.Length);
        double agree = Tolerances.MaxRelErrorFp32(cpp, scaled), unscaled = Tolerances.MaxRelErrorFp32(cpp, plain);
        output.WriteLine($"{family}: vs the scaled forward {agree:E2}, vs the unscaled one {unscaled:E2}");
        Assert.True(agree < 1e-3, $"{family}: {agree:E2}");
        Assert.True(unscaled > 1e-2, $"{family}: llama.cpp is as close to the unscaled rope ({unscaled:E2}): the scaling is not tested.");
    }

    [LlamaCppTheory("llama3/tokenizer.json", "qwen3/tokenizer.json")]
    [InlineData("llama3-bpe")]
    [InlineData("qwen3")]
    public void LlamaCpp_renders_a_conversation_as_the_engine_from_the_exported_chat_template(string family)
    {
        // llama.cpp (and so Ollama, llama-server) formats chats from tokenizer.chat_template: the prompt it builds for a
        // fine-tuned model is the engine's own (Llama 3 headers, ChatML); the engine's BOS is llama.cpp's add_bos
        var f = Families[family];
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "model");
        var small = f with { Config = f.Config with { HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1, HeadDimOverride = 4, AttentionBias = null, RopeScaling = null } };
        WriteCheckpoint(small, model, 3);
        string gguf = dir.File("chat.gguf");
        GgufExporter.Export(model, gguf);
        var tokenizer = TokenizerLoader.FromDirectory(model);
        var template = ChatTemplate.ForTokenizer(tokenizer, small.Config.ModelType);
        ChatMessage[] chat =
        [
            ChatMessage.System("You answer in one word."),
            ChatMessage.User("What is the capital of France?"),
            ChatMessage.Assistant("Paris"),
            ChatMessage.User("And of Italy?"),
        ];
        string engine = template.Render(chat, addGenerationPrompt: true);
        // the model's own Jinja template, as the engine renders it for training, gives the same text
        var own = ChatTemplate.ForModel(model, tokenizer, small.Config.ModelType);
        Assert.True(own.IsModelTemplate);
        Assert.Equal(engine, own.Render(chat, addGenerationPrompt: true));
        using var weights = LlamaCpp.LoadVocabulary(gguf);
        var cpp = new LLama.LLamaTemplate(weights, strict: true) { AddAssistant = true };
        foreach (var m in chat) cpp.Add(m.Role, m.Content);
        string rendered = System.Text.Encoding.UTF8.GetString(cpp.Apply());
        string bos = tokenizer.BosId is { } b && engine.StartsWith(tokenizer.Decode([b]), StringComparison.Ordinal) ? tokenizer.Decode([b]) : "";
        Assert.Equal(engine, bos + rendered);
        Assert.Equal(tokenizer.Encode(engine, addSpecial: false), LlamaCpp.Tokenize(weights, rendered, addSpecial: true, parseSpecial: true));
        output.WriteLine($"{family}: {template.Name}, {engine.Length} characters identical");
    }

    public static TheoryData<string> TokenizerFamilies() => ["llama-spm", "llama3-bpe", "qwen2-bias", "qwen2-slow"];

    /// <summary>Rewrites the folder's tokenizer.json as Qwen2's slow-tokenizer files (vocab.json, merges.txt) and removes it.</summary>
    private static void ToVocabAndMerges(string dir)
    {
        string tj = Path.Combine(dir, "tokenizer.json");
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(tj)))
        {
            var model = doc.RootElement.GetProperty("model");
            using (var f = File.Create(Path.Combine(dir, "vocab.json")))
            using (var w = new Utf8JsonWriter(f))
            {
                w.WriteStartObject();
                foreach (var p in model.GetProperty("vocab").EnumerateObject()) w.WriteNumber(p.Name, p.Value.GetInt32());
                w.WriteEndObject();
            }
            var sb = new System.Text.StringBuilder("#version: 0.2\n");
            foreach (var m in model.GetProperty("merges").EnumerateArray())
                sb.Append(m.ValueKind == JsonValueKind.Array ? m[0].GetString() + " " + m[1].GetString() : m.GetString()).Append('\n');
            File.WriteAllText(Path.Combine(dir, "merges.txt"), sb.ToString(), new System.Text.UTF8Encoding(false));
        }
        File.Delete(tj);
    }

    private static readonly string[] Texts =
    [
        "Hello world! The year 2024 had 366 days.",
        " leading space,  two spaces and\ttab\nnew line\n\n",
        "naïve café, Grüße, 日本語のテキスト, emoji 🙂 done.",
        "x=3.14159; print(f\"{x:.2f}\")  # code",
        "don't we'll they're I'M",
        "",
    ];

    [LlamaCppTheory("llama2/tokenizer.model", "llama3/tokenizer.json", "qwen3/tokenizer.json")]
    [MemberData(nameof(TokenizerFamilies))]
    public void LlamaCpp_tokenizes_as_the_engine_from_the_exported_metadata(string family)
    {
        var f = Families[family == "qwen2-slow" ? "qwen2-bias" : family];
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "model");
        // the tokenizer needs the real vocabulary, not a big model: shrink the layers, keep vocab_size
        var small = f with { Config = f.Config with { HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1, HeadDimOverride = 4 } };
        WriteCheckpoint(small, model, 3);
        if (family == "qwen2-slow") ToVocabAndMerges(model);
        string gguf = dir.File("vocab.gguf");
        var result = GgufExporter.Export(model, gguf);
        var engine = TokenizerLoader.FromDirectory(model);

        var special = new List<string>();
        if (engine.BosId is { } b) special.Add(engine.Decode([b]) + "Hi");
        special.AddRange(family switch
        {
            "llama3-bpe" => ["<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"],
            "qwen2-bias" or "qwen2-slow" => ["<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n</think>"],
            _ => ["</s> and <s> inside"],
        });

        using var cpp = LlamaCpp.LoadVocabulary(gguf);
        Assert.Equal(result.TokenizerModel, LlamaCpp.Metadata(cpp, "tokenizer.ggml.model"));
        Assert.Equal(result.PreTokenizer, LlamaCpp.Metadata(cpp, "tokenizer.ggml.pre"));
        int compared = 0;
        foreach (string text in Texts.Concat(special))
            foreach (bool addSpecial in new[] { true, false })
            {
                int[] want = engine.Encode(text, addSpecial: addSpecial, allowSpecial: true);
                int[] got = LlamaCpp.Tokenize(cpp, text, addSpecial, parseSpecial: true);
                Assert.True(want.SequenceEqual(got),
                    $"{family}, addSpecial={addSpecial}, \"{text}\": engine [{string.Join(", ", want)}], llama.cpp [{string.Join(", ", got)}]");
                compared += want.Length;
            }
        Assert.True(compared > 40, $"only {compared} tokens compared");
        output.WriteLine($"{family}: {compared} tokens identical ({result.TokenizerModel}, pre {result.PreTokenizer})");

        // the chat template travels verbatim: the one the engine itself renders for this folder
        var own = ChatTemplate.FromModelDirectory(model);
        var file = GgufReader.Open(gguf);
        if (own is null) Assert.False(file.TryGet("tokenizer.chat_template", out _));
        else Assert.Equal(own.Source, file["tokenizer.chat_template"].AsString());
    }
}
