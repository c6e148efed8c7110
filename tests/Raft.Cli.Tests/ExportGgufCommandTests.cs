using System.Text;
using System.Text.Json;
using Raft.Model;
using Raft.Model.Gguf;

namespace Raft.Cli.Tests;

/// <summary><c>raft export-gguf</c>: the file it writes and its refusals (exit 2, naming the argument, key, value and file).</summary>
public class ExportGgufCommandTests : CliHarness
{
    private static readonly ModelConfig Config = new()
    {
        ModelType = "llama", HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, VocabSize = 300, MaxPositionEmbeddings = 128, RmsNormEps = 1e-5, RopeTheta = 10000,
    };

    /// <summary>GPT-2's byte → character map (printable Latin-1 bytes stand for themselves, the rest shift past 255).</summary>
    private static char[] ByteChars()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
            map[b] = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? (char)b : (char)(256 + n++);
        return map;
    }

    /// <summary>A GPT-2-style byte-level BPE tokenizer.json: 256 byte tokens, a few merges, one special token.</summary>
    private static void WriteTokenizer(string dir, string? splitRegex = null)
    {
        var c = ByteChars();
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[c[b].ToString()] = b;
        string sp = c[' '].ToString();
        string[] merges = [$"{sp} t", "h e", $"{sp}t he", "i n", $"{sp} a"];
        foreach (string m in merges) vocab[m.Replace(" ", "", StringComparison.Ordinal)] = vocab.Count;
        object pre = splitRegex is null
            ? new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true }
            : new { type = "Sequence", pretokenizers = new object[] { new { type = "Split", pattern = new { Regex = splitRegex }, behavior = "Isolated", invert = false }, new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false } } };
        var json = new
        {
            version = "1.0",
            added_tokens = new[] { new { id = vocab.Count, content = "<|endoftext|>", special = true, normalized = false } },
            normalizer = (object?)null,
            pre_tokenizer = pre,
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", vocab, merges },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), JsonSerializer.Serialize(json));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            JsonSerializer.Serialize(new { eos_token = "<|endoftext|>", chat_template = "{% for m in messages %}{{ m.content }}<|endoftext|>{% endfor %}" }));
    }

    private string Model(string name, Action<string>? edit = null, string? splitRegex = null)
    {
        string dir = PathOf(name);
        var weights = new TensorSet();
        var rng = new Random(5);
        foreach (var (n, shape) in Config.TensorShapes())
        {
            var t = Tensor.Zeros(n, shape);
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)Gauss.Next(rng) * 0.3f;
            weights.Add(t);
        }
        Checkpoint.Save(dir, Config, weights);
        WriteTokenizer(dir, splitRegex);
        edit?.Invoke(dir);
        return dir;
    }

    [Fact]
    public void Export_writes_a_gguf_file_with_llama_cpp_names_metadata_and_permuted_q_k()
    {
        string model = Model("m");
        string gguf = PathOf("m.gguf");
        var r = Raft("export-gguf", "--model", model, "--out", gguf, "--dtype", "F16");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(Path.GetFullPath(gguf), r.Json.GetProperty("gguf").GetString());
        Assert.Equal("llama", r.Json.GetProperty("architecture").GetString());
        Assert.Equal("f16", r.Json.GetProperty("dtype").GetString());
        Assert.Equal("gpt2", r.Json.GetProperty("pre_tokenizer").GetString());
        Assert.Equal(3 + 2 * 9, r.Json.GetProperty("tensors").GetInt32()); // embedding, output_norm, output + 9 per layer
        Assert.Empty(Directory.GetFiles(Dir, ".*.tmp"));

        var f = GgufReader.Open(gguf);
        Assert.Equal("llama", f["general.architecture"].AsString());
        Assert.Equal(16, f["llama.embedding_length"].AsInteger());
        Assert.Equal(2, f["llama.attention.head_count_kv"].AsInteger());
        Assert.Equal(1e-5, f["llama.attention.layer_norm_rms_epsilon"].AsFloat(), 1e-9);
        Assert.Equal("gpt2", f["tokenizer.ggml.model"].AsString());
        var tokens = (string[])f["tokenizer.ggml.tokens"].Value;
        var types = (int[])f["tokenizer.ggml.token_type"].Value;
        Assert.Equal(300, tokens.Length);
        Assert.Equal("<|endoftext|>", tokens[261]);
        Assert.Equal((int)GgufTokenType.Control, types[261]);
        Assert.Equal("[PAD262]", tokens[262]);
        Assert.Equal((int)GgufTokenType.Unused, types[299]);
        Assert.Equal(5, ((string[])f["tokenizer.ggml.merges"].Value).Length);
        Assert.Equal(261, f["tokenizer.ggml.eos_token_id"].AsInteger());
        Assert.Contains("<|endoftext|>{% endfor %}", f["tokenizer.chat_template"].AsString());

        Assert.True(f.TryGetTensor("token_embd.weight", out var emb));
        Assert.Equal([16L, 300L], emb.Dims);
        Assert.Equal(GgmlType.F16, emb.Type);
        Assert.True(f.TryGetTensor("blk.1.ffn_norm.weight", out var norm));
        Assert.Equal(GgmlType.F32, norm.Type);
        var (_, weights) = Checkpoint.Load(model);
        float[] q = weights["model.layers.1.self_attn.q_proj.weight"].Data;
        float[] expected = GgufExporter.PermuteHalvesToPairs(q, 4, 4, 16);
        float[] got = f.ReadTensor("blk.1.attn_q.weight");
        for (int i = 0; i < got.Length; i++) Assert.Equal((float)(Half)expected[i], got[i]);
        Assert.NotEqual((float)(Half)q[16], got[16]); // row 1 of head 0 moved
        float[] v = f.ReadTensor("blk.1.attn_v.weight"); // v is not permuted
        float[] hv = weights["model.layers.1.self_attn.v_proj.weight"].Data;
        for (int i = 0; i < v.Length; i++) Assert.Equal((float)(Half)hv[i], v[i]);
    }

    [Fact]
    public void Bad_arguments_exit_2_naming_the_argument_and_write_nothing()
    {
        string model = Model("m");
        var dtype = Raft("export-gguf", "--model", model, "--out", PathOf("a.gguf"), "--dtype", "q4");
        Assert.Equal(2, dtype.Code);
        Assert.Contains("--dtype must be f32, f16 or bf16, got 'q4'", dtype.Stderr);

        var inside = Raft("export-gguf", "--model", model, "--out", Path.Combine(model, "x.gguf"));
        Assert.Equal(2, inside.Code);
        Assert.Contains("inside the --model folder", inside.Stderr);

        var noDir = Raft("export-gguf", "--model", model, "--out", Path.Combine(Dir, "nope", "x.gguf"));
        Assert.Equal(2, noDir.Code);
        Assert.Contains("--out", noDir.Stderr);

        var noModel = Raft("export-gguf", "--model", PathOf("missing"), "--out", PathOf("b.gguf"));
        Assert.Equal(2, noModel.Code);
        Assert.Contains($"--model {PathOf("missing")}: directory not found", noModel.Stderr);

        Assert.Empty(Directory.GetFiles(Dir, "*.gguf"));
        Assert.Empty(Directory.GetFiles(model, "*.gguf"));
    }

    [Fact]
    public void Config_keys_the_export_cannot_carry_are_refused_by_name_value_and_file()
    {
        static void Patch(string dir, string key, string value)
        {
            string p = Path.Combine(dir, "config.json");
            string json = File.ReadAllText(p);
            File.WriteAllText(p, json.TrimEnd().TrimEnd('}') + $", \"{key}\": {value}}}");
        }
        foreach (var (key, value, named, shown) in new[]
                 {
                     // refused by the export: llama.cpp has no dynamic NTK
                     ("rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}", "rope_scaling.rope_type", "\"dynamic\""),
                     // refused by the export: yarn with another β than llama.cpp's
                     ("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"beta_fast\": 16}", "rope_scaling.beta_fast", "16"),
                     // refused by the engine's own config reader already
                     ("hidden_act", "\"gelu\"", "hidden_act", "\"gelu\""),
                     ("use_sliding_window", "true", "use_sliding_window", "true"),
                 })
        {
            string model = Model("m-" + named, d => Patch(d, key, value));
            string gguf = PathOf(named + ".gguf");
            var r = Raft("export-gguf", "--model", model, "--out", gguf);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains($"{named} = {shown}", r.Stderr);
            Assert.Contains(Path.Combine(model, "config.json"), r.Stderr);
            Assert.False(File.Exists(gguf));
        }
    }

    [Fact]
    public void A_tokenizer_llama_cpp_would_split_differently_is_refused_naming_the_file()
    {
        string model = Model("m", splitRegex: @"\p{L}+|\s+|.");
        var r = Raft("export-gguf", "--model", model, "--out", PathOf("t.gguf"));
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains(Path.Combine(model, "tokenizer.json"), r.Stderr);
        Assert.Contains(@"Split regex \p{L}+|\s+|.", r.Stderr);
        Assert.False(File.Exists(PathOf("t.gguf")));
    }

    [Fact]
    public void The_built_in_byte_tokenizer_model_type_is_refused_by_name()
    {
        string model = Model("m", d =>
        {
            string p = Path.Combine(d, "config.json");
            File.WriteAllText(p, File.ReadAllText(p).Replace("\"model_type\": \"llama\"", "\"model_type\": \"raft\"", StringComparison.Ordinal));
        });
        var r = Raft("export-gguf", "--model", model, "--out", PathOf("r.gguf"));
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains("model_type = \"raft\"", r.Stderr);
        Assert.Contains(Path.Combine(model, "config.json"), r.Stderr);
    }
}
