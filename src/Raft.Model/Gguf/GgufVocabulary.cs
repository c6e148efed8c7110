using System.Text.Json;
using Raft.Model.Tokenization;

namespace Raft.Model.Gguf;

/// <summary>GGUF's token types (<c>tokenizer.ggml.token_type</c>), the numbers SentencePiece also uses.</summary>
public enum GgufTokenType
{
    /// <summary>An ordinary token.</summary>
    Normal = 1,
    /// <summary>The unknown token.</summary>
    Unknown = 2,
    /// <summary>A control token (special: BOS, EOS, chat markers).</summary>
    Control = 3,
    /// <summary>An added token that is not special (always matched in text).</summary>
    UserDefined = 4,
    /// <summary>An id no token of the tokenizer has (padding rows of the embedding).</summary>
    Unused = 5,
    /// <summary>A byte-fallback token (&lt;0x0A&gt;).</summary>
    Byte = 6,
}

/// <summary>
/// The tokenizer metadata llama.cpp reads (<c>tokenizer.ggml.*</c>, <c>tokenizer.chat_template</c>), built from a model
/// folder's own tokenizer files as llama.cpp's convert_hf_to_gguf.py builds it:
/// <list type="bullet">
/// <item>a byte-level BPE <c>tokenizer.json</c> → model <c>gpt2</c>: the vocabulary's token strings by id (added tokens by
/// their text), merges as "a b", token types (special added tokens and added tokens that look like <c>&lt;|…|&gt;</c> are
/// CONTROL, other added tokens USER_DEFINED), and the pre-tokenizer named by its Split regex (Llama 3's → <c>llama-bpe</c>,
/// Qwen2's → <c>qwen2</c>, GPT-2's ByteLevel regex → <c>gpt2</c>; any other is refused: llama.cpp would split the text
/// differently); Qwen2's slow-tokenizer files (vocab.json + merges.txt) likewise, with pre-tokenizer <c>qwen2</c>;</item>
/// <item>a SentencePiece <c>tokenizer.model</c> (BPE, Llama 2) → model <c>llama</c>: pieces, scores, piece types and
/// add_space_prefix from the normalizer.</item>
/// </list>
/// Ids the tokenizer does not use up to the embedding's vocab_size become <c>[PAD{id}]</c> tokens of type UNUSED, so that
/// llama.cpp's vocabulary has as many entries as the embedding has rows. BOS, EOS, PAD and whether BOS/EOS are added are
/// the engine's own tokenizer's (<see cref="TokenizerLoader"/>), so llama.cpp tokenizes as the engine does.
/// </summary>
public sealed class GgufVocabulary
{
    /// <summary>tokenizer.ggml.model: "gpt2" or "llama".</summary>
    public required string Model { get; init; }
    /// <summary>tokenizer.ggml.pre: "llama-bpe", "qwen2", "gpt2" or "default".</summary>
    public required string Pre { get; init; }
    /// <summary>Token text by id (vocab_size entries).</summary>
    public required string[] Tokens { get; init; }
    /// <summary>Token type by id (<see cref="GgufTokenType"/> numbers).</summary>
    public required int[] TokenTypes { get; init; }
    /// <summary>SentencePiece scores by id (model "llama"), else null.</summary>
    public float[]? Scores { get; init; }
    /// <summary>BPE merges "a b" in rank order (model "gpt2"), else null.</summary>
    public string[]? Merges { get; init; }
    /// <summary>BOS id.</summary>
    public int? Bos { get; init; }
    /// <summary>EOS id.</summary>
    public int? Eos { get; init; }
    /// <summary>Unknown-token id.</summary>
    public int? Unknown { get; init; }
    /// <summary>Padding id.</summary>
    public int? Padding { get; init; }
    /// <summary>Whether a sequence starts with BOS.</summary>
    public bool AddBos { get; init; }
    /// <summary>Whether a sequence ends with EOS.</summary>
    public bool AddEos { get; init; }
    /// <summary>tokenizer.ggml.add_space_prefix (SentencePiece's add_dummy_prefix), null for byte-level BPE.</summary>
    public bool? AddSpacePrefix { get; init; }
    /// <summary>The Jinja chat template (tokenizer_config.json's chat_template or chat_template.jinja), if any.</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Named extra chat templates (tokenizer_config.json's list form), name → template.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> NamedChatTemplates { get; init; } = [];

    /// <summary>The <c>tokenizer.*</c> metadata, in the order convert_hf_to_gguf.py writes it.</summary>
    public IEnumerable<KeyValuePair<string, GgufValue>> Metadata()
    {
        yield return new("tokenizer.ggml.model", GgufValue.Str(Model));
        yield return new("tokenizer.ggml.pre", GgufValue.Str(Pre));
        yield return new("tokenizer.ggml.tokens", GgufValue.Strings(Tokens));
        if (Scores is not null) yield return new("tokenizer.ggml.scores", GgufValue.Float32s(Scores));
        yield return new("tokenizer.ggml.token_type", GgufValue.Int32s(TokenTypes));
        if (Merges is not null) yield return new("tokenizer.ggml.merges", GgufValue.Strings(Merges));
        if (Bos is { } b) yield return new("tokenizer.ggml.bos_token_id", GgufValue.U32(b));
        if (Eos is { } e) yield return new("tokenizer.ggml.eos_token_id", GgufValue.U32(e));
        if (Unknown is { } u) yield return new("tokenizer.ggml.unknown_token_id", GgufValue.U32(u));
        if (Padding is { } p) yield return new("tokenizer.ggml.padding_token_id", GgufValue.U32(p));
        yield return new("tokenizer.ggml.add_bos_token", GgufValue.Bool(AddBos));
        yield return new("tokenizer.ggml.add_eos_token", GgufValue.Bool(AddEos));
        if (AddSpacePrefix is { } sp) yield return new("tokenizer.ggml.add_space_prefix", GgufValue.Bool(sp));
        if (ChatTemplate is not null) yield return new("tokenizer.chat_template", GgufValue.Str(ChatTemplate));
        foreach (var (name, template) in NamedChatTemplates)
            yield return new($"tokenizer.chat_template.{name}", GgufValue.Str(template));
    }

    /// <summary>
    /// Builds the vocabulary of the model folder <paramref name="dir"/> for an embedding of <paramref name="vocabSize"/> rows.
    /// </summary>
    /// <exception cref="NotSupportedException">The tokenizer cannot be represented so that llama.cpp tokenizes the same (the message names the file and what).</exception>
    /// <exception cref="InvalidDataException">A tokenizer file is malformed, or the tokenizer has ids at or past vocab_size.</exception>
    public static GgufVocabulary FromDirectory(string dir, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "vocab_size must be > 0.");
        var engine = TokenizerLoader.FromDirectory(dir) as MlTokenizerAdapter
            ?? throw new NotSupportedException($"{dir}: the tokenizer is not one GGUF can describe.");
        if (engine.VocabSize > vocabSize)
            throw new InvalidDataException($"{dir}: the tokenizer has ids up to {engine.VocabSize - 1}, but config.json's vocab_size is {vocabSize}.");
        var (template, named) = ReadChatTemplates(dir);
        string tj = Path.Combine(dir, "tokenizer.json"), tm = Path.Combine(dir, "tokenizer.model");
        string vj = Path.Combine(dir, "vocab.json"), mt = Path.Combine(dir, "merges.txt");
        GgufVocabulary v = engine.Family == "llama2"
            ? FromSentencePiece(tm, dir, vocabSize, engine)
            : File.Exists(tj) ? FromTokenizerJson(tj, dir, vocabSize, engine)
            : File.Exists(vj) && File.Exists(mt) && !File.Exists(tm) && Directory.GetFiles(dir, "*.tiktoken").Length == 0
                ? FromVocabAndMerges(vj, mt, vocabSize, engine)
            : throw new NotSupportedException(
                $"{dir}: GGUF export reads a byte-level BPE tokenizer from tokenizer.json (or Qwen2's vocab.json + merges.txt) or a SentencePiece tokenizer.model; " +
                $"this folder's {engine.Family} tokenizer comes from a tiktoken file.");
        return new GgufVocabulary
        {
            Model = v.Model, Pre = v.Pre, Tokens = v.Tokens, TokenTypes = v.TokenTypes, Scores = v.Scores, Merges = v.Merges,
            Unknown = v.Unknown, AddSpacePrefix = v.AddSpacePrefix,
            Bos = engine.BosId, Eos = engine.EosId, Padding = engine.PadId, AddBos = engine.AddsBos, AddEos = engine.AddsEos,
            ChatTemplate = template, NamedChatTemplates = named,
        };
    }

    // ---------------------------------------------------------------- byte-level BPE (tokenizer.json)

    private static GgufVocabulary FromTokenizerJson(string path, string dir, int vocabSize, MlTokenizerAdapter engine)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 256 });
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        var tokens = new string?[vocabSize];
        var types = new int[vocabSize];
        void Put(int id, string text, GgufTokenType type, string what)
        {
            if (id < 0 || id >= vocabSize)
                throw new InvalidDataException($"{path}: {what} \"{text}\" has id {id}, outside config.json's vocab_size {vocabSize}.");
            tokens[id] = text;
            types[id] = (int)type;
        }
        foreach (var kv in model.GetProperty("vocab").EnumerateObject()) Put(kv.Value.GetInt32(), kv.Name, GgufTokenType.Normal, "model.vocab token");
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var a in added.EnumerateArray())
            {
                string text = a.GetProperty("content").GetString()!;
                bool special = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                Put(a.GetProperty("id").GetInt32(), text, special || LooksSpecial(text) ? GgufTokenType.Control : GgufTokenType.UserDefined, "added token");
            }
        // tokenizer_config.json's added tokens, where tokenizer.json does not list them (the engine merges them the same way)
        foreach (var (text, id) in engine.SpecialTokens)
            if (id < vocabSize && tokens[id] is null)
                Put(id, text, engine.IsSpecial(id) || LooksSpecial(text) ? GgufTokenType.Control : GgufTokenType.UserDefined, "added token");

        var merges = new List<string>();
        foreach (var m in model.GetProperty("merges").EnumerateArray())
            merges.Add(m.ValueKind == JsonValueKind.String ? m.GetString()! : m[0].GetString() + " " + m[1].GetString());

        string pre = PreTokenizerName(path, root);
        return new GgufVocabulary
        {
            Model = "gpt2", Pre = pre, Tokens = Padded(tokens, types), TokenTypes = types, Merges = [.. merges],
        };
    }

    /// <summary>
    /// Qwen2's slow-tokenizer files: vocab.json (token → id), merges.txt ("a b" a line after an optional #version line),
    /// the added tokens of tokenizer_config.json; the engine splits them with Qwen2's regex, so the pre-tokenizer is qwen2.
    /// </summary>
    private static GgufVocabulary FromVocabAndMerges(string vocabPath, string mergesPath, int vocabSize, MlTokenizerAdapter engine)
    {
        var tokens = new string?[vocabSize];
        var types = new int[vocabSize];
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(vocabPath)))
            foreach (var kv in doc.RootElement.EnumerateObject())
            {
                int id = kv.Value.GetInt32();
                if (id < 0 || id >= vocabSize)
                    throw new InvalidDataException($"{vocabPath}: token \"{kv.Name}\" has id {id}, outside config.json's vocab_size {vocabSize}.");
                tokens[id] = kv.Name;
                types[id] = (int)GgufTokenType.Normal;
            }
        foreach (var (text, id) in engine.SpecialTokens)
            if (id < vocabSize)
            {
                tokens[id] = text;
                types[id] = (int)(engine.IsSpecial(id) || LooksSpecial(text) ? GgufTokenType.Control : GgufTokenType.UserDefined);
            }
        var merges = new List<string>();
        int lineNo = 0;
        foreach (string line in File.ReadLines(mergesPath))
        {
            lineNo++;
            if ((lineNo == 1 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0) continue;
            if (line.Split(' ').Length != 2) throw new InvalidDataException($"{mergesPath}: line {lineNo} is not \"a b\".");
            merges.Add(line);
        }
        return new GgufVocabulary { Model = "gpt2", Pre = "qwen2", Tokens = Padded(tokens, types), TokenTypes = types, Merges = [.. merges] };
    }

    /// <summary>convert_hf_to_gguf.py's rule: added tokens spelled like &lt;|…|&gt; are control tokens even when not flagged special.</summary>
    private static bool LooksSpecial(string text) => text.StartsWith("<|", StringComparison.Ordinal) && text.EndsWith("|>", StringComparison.Ordinal);

    /// <summary>The llama.cpp pre-tokenizer that splits text as this tokenizer.json's pre_tokenizer does; refuses any other.</summary>
    private static string PreTokenizerName(string path, JsonElement root)
    {
        root.TryGetProperty("pre_tokenizer", out var pre);
        string? regex = TokenizerLoader.FindSplitRegex(pre);
        if (regex == PreTokenizerPatterns.Llama3) return "llama-bpe";
        if (regex == PreTokenizerPatterns.Qwen2) return "qwen2";
        if (regex is null && pre.ValueKind == JsonValueKind.Object && pre.TryGetProperty("type", out var t) && t.GetString() == "ByteLevel"
            && (!pre.TryGetProperty("use_regex", out var ur) || ur.ValueKind == JsonValueKind.True))
            return "gpt2";
        string what = regex is null ? $"pre_tokenizer {(pre.ValueKind == JsonValueKind.Undefined ? "(none)" : pre.GetRawText())}" : $"pre_tokenizer Split regex {regex}";
        throw new NotSupportedException(
            $"{path}: {what} is not one GGUF export knows a llama.cpp pre-tokenizer for (Llama 3's → llama-bpe, Qwen2's → qwen2, GPT-2's ByteLevel → gpt2); llama.cpp would split text differently.");
    }

    // ---------------------------------------------------------------- SentencePiece (tokenizer.model)

    private static GgufVocabulary FromSentencePiece(string path, string dir, int vocabSize, MlTokenizerAdapter engine)
    {
        var sp = SentencePieceModelFile.Read(path);
        if (sp.ModelType != 2)
            throw new NotSupportedException($"{path}: SentencePiece model_type {sp.ModelTypeName}; GGUF export writes llama.cpp's SentencePiece-BPE vocabulary (model_type BPE, as Llama 2's) only.");
        if (sp.Pieces.Count > vocabSize)
            throw new InvalidDataException($"{path}: {sp.Pieces.Count} pieces, but config.json's vocab_size is {vocabSize}.");
        var tokens = new string?[vocabSize];
        var types = new int[vocabSize];
        var scores = new float[vocabSize];
        int? unk = null;
        for (int i = 0; i < sp.Pieces.Count; i++)
        {
            var p = sp.Pieces[i];
            tokens[i] = p.Text;
            scores[i] = p.Score;
            types[i] = (int)p.Type;
            if (p.Type == SentencePieceModelFile.PieceType.Unknown) unk ??= i;
        }
        // added tokens of tokenizer_config.json beyond the pieces (e.g. a chat model's extra markers)
        foreach (var (text, id) in engine.SpecialTokens)
            if (id >= sp.Pieces.Count && id < vocabSize)
            {
                tokens[id] = text;
                types[id] = (int)(engine.IsSpecial(id) ? GgufTokenType.Control : GgufTokenType.UserDefined);
            }
        for (int i = 0; i < vocabSize; i++) if (tokens[i] is null) scores[i] = -10000f;
        return new GgufVocabulary
        {
            Model = "llama", Pre = "default", Tokens = Padded(tokens, types), TokenTypes = types, Scores = scores,
            Unknown = unk, AddSpacePrefix = sp.AddDummyPrefix,
        };
    }

    private static string[] Padded(string?[] tokens, int[] types)
    {
        var result = new string[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            if (tokens[i] is { } t) result[i] = t;
            else
            {
                result[i] = $"[PAD{i}]";
                types[i] = (int)GgufTokenType.Unused;
            }
        }
        return result;
    }

    // ---------------------------------------------------------------- chat template

    /// <summary>
    /// The folder's chat template in transformers' (and <see cref="ChatTemplate.FromModelDirectory"/>'s) order of precedence:
    /// chat_template.jinja, chat_template.json's chat_template, tokenizer_config.json's chat_template; a list of named
    /// templates gives the one named "default" and keeps the others as tokenizer.chat_template.NAME.
    /// </summary>
    private static (string? Default, List<KeyValuePair<string, string>> Named) ReadChatTemplates(string dir)
    {
        var named = new List<KeyValuePair<string, string>>();
        string jinja = Path.Combine(dir, "chat_template.jinja");
        if (File.Exists(jinja)) return (File.ReadAllText(jinja), named);
        foreach (string file in new[] { "chat_template.json", "tokenizer_config.json" })
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true }); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var ct) || ct.ValueKind == JsonValueKind.Null)
                    continue;
                if (ct.ValueKind == JsonValueKind.String) return (ct.GetString(), named);
                if (ct.ValueKind != JsonValueKind.Array)
                    throw new InvalidDataException($"{path}: chat_template must be a string or a list of named templates, got {ct.ValueKind}.");
                string? template = null;
                foreach (var e in ct.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String ||
                        !e.TryGetProperty("template", out var t) || t.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"{path}: chat_template entries must be {{\"name\": …, \"template\": …}}.");
                    if (n.GetString() == "default") template = t.GetString();
                    else named.Add(new(n.GetString()!, t.GetString()!));
                }
                return (template, named);
            }
        }
        return (null, named);
    }
}
