using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Raft.Model.Tokenization;

/// <summary>
/// Builds the tokenizer of a model directory from the files it holds, in this order:
/// <list type="number">
/// <item><c>tokenizer.json</c> (Hugging Face) whose model is a byte-level BPE: its vocabulary, merges, Split regex,
/// normalizer and added tokens go to Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (Llama 3, Qwen2/3, SmolLM2, GPT-2).</item>
/// <item><c>tokenizer.model</c>: tiktoken text (Llama 3's original release: tiktoken with Llama 3's regex and its 256
/// special tokens) or a SentencePiece model (Llama 2: <see cref="LlamaTokenizer"/>).</item>
/// <item><c>*.tiktoken</c> (cl100k_base, o200k_base, gpt2/r50k_base, or any other file, read with Llama 3's regex).</item>
/// <item><c>vocab.json</c> + <c>merges.txt</c> (Qwen2's slow-tokenizer files: byte-level BPE with Qwen2's regex and NFC).</item>
/// </list>
/// Added/special tokens come from tokenizer.json's added_tokens and tokenizer_config.json's added_tokens_decoder; BOS,
/// EOS, PAD and whether BOS/EOS are added from tokenizer_config.json. A tokenizer.json written for SentencePiece
/// (Metaspace, byte fallback: Llama 2) is read through the tokenizer.model beside it.
/// </summary>
public static class TokenizerLoader
{
    /// <summary>
    /// The tokenizer of a model: the built-in <see cref="ByteTokenizer"/> when <paramref name="modelType"/> (config.json's
    /// model_type) is "raft", otherwise <see cref="FromDirectory"/>.
    /// </summary>
    public static ITokenizer ForModel(string dir, string? modelType) =>
        string.Equals(modelType, "raft", StringComparison.OrdinalIgnoreCase) ? ByteTokenizer.Instance : FromDirectory(dir);

    /// <summary>Loads the tokenizer of <paramref name="dir"/>; errors name the directory and the missing or malformed file.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">No tokenizer file is there.</exception>
    /// <exception cref="InvalidDataException">A tokenizer file is malformed.</exception>
    /// <exception cref="NotSupportedException">The file describes a tokenizer kind that is not supported.</exception>
    public static ITokenizer FromDirectory(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Tokenizer directory {dir} does not exist.");
        var config = TokenizerConfig.Read(Path.Combine(dir, "tokenizer_config.json"));

        string tj = Path.Combine(dir, "tokenizer.json");
        string tm = Path.Combine(dir, "tokenizer.model");
        if (File.Exists(tj))
        {
            var doc = ParseJson(tj);
            using (doc)
            try
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{tj}: the top level is {doc.RootElement.ValueKind}, expected a JSON object.");
                if (!IsSentencePieceStyle(doc.RootElement)) return FromTokenizerJson(tj, doc.RootElement, config);
                if (!File.Exists(tm))
                    throw new NotSupportedException(
                        $"{tj} describes a SentencePiece-style BPE (Metaspace / byte fallback, as Llama 2's); " +
                        $"put the model's tokenizer.model (SentencePiece) in {dir} to load it.");
            }
            // a string with a lone surrogate escape (\uDDDD) parses, then fails when it is read
            catch (InvalidOperationException e) when (JsonStringErrors.IsFromJson(e))
            {
                throw new InvalidDataException($"{tj}: not valid JSON ({e.Message}).", e);
            }
        }
        if (File.Exists(tm))
            return LooksLikeTiktoken(tm) ? FromTiktokenFile(tm, config, llama3Default: true) : FromSentencePiece(tm, config);

        string[] tiktoken = Directory.GetFiles(dir, "*.tiktoken");
        if (tiktoken.Length > 1)
            throw new InvalidDataException($"{dir} holds several *.tiktoken files ({string.Join(", ", tiktoken.Select(Path.GetFileName))}); keep one.");
        if (tiktoken.Length == 1) return FromTiktokenFile(tiktoken[0], config, llama3Default: false);

        string vj = Path.Combine(dir, "vocab.json"), mt = Path.Combine(dir, "merges.txt");
        if (File.Exists(vj) && File.Exists(mt)) return FromVocabAndMerges(vj, mt, config);
        if (File.Exists(vj) || File.Exists(mt))
            throw new FileNotFoundException(
                $"{dir} has {(File.Exists(vj) ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json")}; a byte-level BPE needs both.",
                File.Exists(vj) ? mt : vj);
        throw new FileNotFoundException(
            $"{dir} holds no tokenizer: expected tokenizer.json, tokenizer.model, a *.tiktoken file, or vocab.json + merges.txt.", tj);
    }

    // ---------------------------------------------------------------- tokenizer.json

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            var bytes = File.ReadAllBytes(path);
            Utf8Check.Require(bytes, path, "the file");
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }

    private static bool IsSentencePieceStyle(JsonElement root)
    {
        if (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.Object &&
            m.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True) return true;
        string all = (root.TryGetProperty("pre_tokenizer", out var p) ? p.GetRawText() : "") +
                     (root.TryGetProperty("normalizer", out var n) ? n.GetRawText() : "");
        return all.Contains("Metaspace", StringComparison.Ordinal) || all.Contains("\\u2581", StringComparison.Ordinal) || all.Contains('\u2581');
    }

    private static ITokenizer FromTokenizerJson(string path, JsonElement root, TokenizerConfig config)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: has no \"model\" object.");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE")
            throw new NotSupportedException($"{path}: model.type \"{type}\" is not supported (only byte-level BPE; SentencePiece through tokenizer.model).");
        if (!model.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: model.vocab is missing or not an object.");
        if (!model.TryGetProperty("merges", out var mergesEl) || mergesEl.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{path}: model.merges is missing or not an array.");

        var vocab = new List<KeyValuePair<string, int>>(vocabEl.EnumerateObject().Count());
        int maxId = -1;
        foreach (var kv in vocabEl.EnumerateObject())
        {
            if (kv.Value.ValueKind != JsonValueKind.Number || !kv.Value.TryGetInt32(out int id) || id < 0)
                throw new InvalidDataException($"{path}: model.vocab[\"{kv.Name}\"] is not a non-negative integer id.");
            vocab.Add(new(kv.Name, id));
            maxId = Math.Max(maxId, id);
        }
        var merges = new List<string>(mergesEl.GetArrayLength());
        int mi = 0;
        foreach (var m in mergesEl.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String) merges.Add(m.GetString()!);
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 &&
                     m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                merges.Add(m[0].GetString() + " " + m[1].GetString());
            else throw new InvalidDataException($"{path}: model.merges[{mi}] is neither \"a b\" nor [\"a\", \"b\"].");
            mi++;
        }

        string preJson = root.TryGetProperty("pre_tokenizer", out var pre) ? pre.GetRawText() : "null";
        string decJson = root.TryGetProperty("decoder", out var dec) ? dec.GetRawText() : "null";
        if (!preJson.Contains("\"ByteLevel\"", StringComparison.Ordinal) && !decJson.Contains("\"ByteLevel\"", StringComparison.Ordinal))
            throw new NotSupportedException($"{path}: neither pre_tokenizer nor decoder is ByteLevel; only byte-level BPE tokenizer.json files are supported.");
        string pattern = FindSplitRegex(pre) ?? PreTokenizerPatterns.Gpt2;
        try { _ = new Regex(pattern); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: the pre_tokenizer's Split regex does not compile in .NET ({e.Message}).", e); }

        Normalizer? normalizer = null;
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind != JsonValueKind.Null)
        {
            string nt = norm.GetRawText();
            if (nt.Contains("\"NFC\"", StringComparison.Ordinal)) normalizer = NfcNormalizer.Instance;
            else throw new NotSupportedException($"{path}: normalizer {nt} is not supported (only NFC or none).");
        }

        var added = new Dictionary<string, (int, bool)>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var a in at.EnumerateArray())
            {
                if (a.ValueKind != JsonValueKind.Object ||
                    !a.TryGetProperty("id", out var idEl) || idEl.ValueKind != JsonValueKind.Number || !idEl.TryGetInt32(out int id) ||
                    !a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{path}: added_tokens[{i}] lacks an integer \"id\" or a string \"content\".");
                bool special = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                added[c.GetString()!] = (id, special);
                i++;
            }
        }
        config.MergeInto(added);

        BpeTokenizer inner;
        try
        {
            inner = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                PreTokenizer = PreTokenizerPatterns.Create(pattern),
                Normalizer = normalizer,
                ByteLevel = true,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: Microsoft.ML.Tokenizers rejected the BPE model ({e.Message}).", e);
        }

        string family = DetectFamily(added, config);
        bool templateBos = root.TryGetProperty("post_processor", out var post) && TemplateStartsWithSpecial(post);
        return Build(inner, family, added, maxId + 1, config, defaultAddBos: templateBos || family == "llama3");
    }

    /// <summary>The Split pre-tokenizer's regex, looked for at the top level or inside a Sequence (also read by the GGUF export).</summary>
    internal static string? FindSplitRegex(JsonElement pre)
    {
        if (pre.ValueKind != JsonValueKind.Object) return null;
        if (pre.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "Split" &&
            pre.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.Object &&
            p.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
            return r.GetString();
        if (pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var e in list.EnumerateArray())
                if (FindSplitRegex(e) is { } found) return found;
        return null;
    }

    private static bool TemplateStartsWithSpecial(JsonElement post)
    {
        if (post.ValueKind != JsonValueKind.Object) return false;
        if (post.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "TemplateProcessing" &&
            post.TryGetProperty("single", out var single) && single.ValueKind == JsonValueKind.Array && single.GetArrayLength() > 0)
            return single[0].ValueKind == JsonValueKind.Object && single[0].TryGetProperty("SpecialToken", out _);
        if (post.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array)
            return list.EnumerateArray().Any(TemplateStartsWithSpecial);
        return false;
    }

    // ---------------------------------------------------------------- vocab.json + merges.txt

    private static ITokenizer FromVocabAndMerges(string vocabPath, string mergesPath, TokenizerConfig config)
    {
        int vocabSize;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(vocabPath));
            vocabSize = doc.RootElement.EnumerateObject().Max(p => p.Value.GetInt32()) + 1;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{vocabPath}: not a JSON object of token → id ({e.Message}).", e);
        }
        var added = new Dictionary<string, (int, bool)>(StringComparer.Ordinal);
        config.MergeInto(added);
        if (added.Count == 0 && vocabSize == 151643)
        {
            // Qwen2's slow tokenizer without its config: the three special tokens every Qwen2 vocabulary appends.
            added["<|endoftext|>"] = (151643, true);
            added["<|im_start|>"] = (151644, true);
            added["<|im_end|>"] = (151645, true);
        }
        BpeTokenizer inner;
        try
        {
            inner = BpeTokenizer.Create(new BpeOptions(vocabPath, mergesPath)
            {
                PreTokenizer = PreTokenizerPatterns.Create(PreTokenizerPatterns.Qwen2),
                Normalizer = NfcNormalizer.Instance,
                ByteLevel = true,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            throw new InvalidDataException($"{vocabPath} + {mergesPath}: Microsoft.ML.Tokenizers rejected the BPE files ({e.Message}).", e);
        }
        string family = DetectFamily(added, config);
        return Build(inner, family == "bpe" ? "qwen2" : family, added, vocabSize, config, defaultAddBos: false);
    }

    // ---------------------------------------------------------------- tiktoken

    private static bool LooksLikeTiktoken(string path)
    {
        using var f = File.OpenRead(path);
        var buf = new byte[256];
        int n = f.Read(buf, 0, buf.Length);
        int nl = Array.IndexOf(buf, (byte)'\n', 0, n);
        if (nl <= 0) return false;
        string line = Encoding.ASCII.GetString(buf, 0, nl).TrimEnd('\r');
        return Regex.IsMatch(line, @"^[A-Za-z0-9+/]+=*\s+\d+$");
    }

    /// <summary>Llama 3's special tokens, ids 128000–128255, as Meta's tokenizer names them (Llama 3.1 onwards).</summary>
    internal static IEnumerable<(string Text, int Id)> Llama3SpecialTokens(int first = 128000)
    {
        string[] named =
        [
            "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
        ];
        for (int i = 0; i < named.Length; i++) yield return (named[i], first + i);
        for (int i = named.Length; i < 256; i++) yield return ($"<|reserved_special_token_{i - named.Length + 2}|>", first + i);
    }

    private static ITokenizer FromTiktokenFile(string path, TokenizerConfig config, bool llama3Default)
    {
        int ranks = 0, maxRank = -1;
        int lineNo = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNo++;
            if (line.Length == 0) continue;
            int sp = line.IndexOf(' ');
            if (sp <= 0 || !int.TryParse(line.AsSpan(sp + 1), out int rank) || rank < 0)
                throw new InvalidDataException($"{path}: line {lineNo} is not \"<base64 token> <rank>\".");
            ranks++;
            maxRank = Math.Max(maxRank, rank);
        }
        if (ranks == 0) throw new InvalidDataException($"{path}: the tiktoken file is empty.");

        string name = Path.GetFileNameWithoutExtension(path).ToLowerInvariant();
        var added = new Dictionary<string, (int, bool)>(StringComparer.Ordinal);
        string pattern;
        string family = "tiktoken";
        string? bos = null, eos = null;
        switch (name)
        {
            case "cl100k_base":
                pattern = PreTokenizerPatterns.Cl100kBase;
                added["<|endoftext|>"] = (100257, true);
                added["<|fim_prefix|>"] = (100258, true);
                added["<|fim_middle|>"] = (100259, true);
                added["<|fim_suffix|>"] = (100260, true);
                added["<|endofprompt|>"] = (100276, true);
                eos = "<|endoftext|>";
                break;
            case "o200k_base":
                pattern = PreTokenizerPatterns.O200kBase;
                added["<|endoftext|>"] = (199999, true);
                added["<|endofprompt|>"] = (200018, true);
                eos = "<|endoftext|>";
                break;
            case "gpt2":
            case "r50k_base":
                pattern = PreTokenizerPatterns.Gpt2;
                added["<|endoftext|>"] = (50256, true);
                eos = "<|endoftext|>";
                break;
            default:
                pattern = PreTokenizerPatterns.Llama3;
                if (llama3Default || maxRank + 1 == 128000)
                {
                    // Meta's names unless tokenizer_config.json names them (Llama 3.0 and 3.1 differ).
                    if (config.Added.Count == 0)
                        foreach (var (text, id) in Llama3SpecialTokens(maxRank + 1)) added[text] = (id, true);
                    family = "llama3";
                    bos = "<|begin_of_text|>";
                    eos = "<|end_of_text|>";
                }
                break;
        }
        config.MergeInto(added);
        TiktokenTokenizer inner;
        try
        {
            inner = TiktokenTokenizer.Create(path, PreTokenizerPatterns.Create(pattern), normalizer: null, specialTokens: null);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: Microsoft.ML.Tokenizers rejected the tiktoken file ({e.Message}).", e);
        }
        return Build(inner, family, added, maxRank + 1, config with { Bos = config.Bos ?? bos, Eos = config.Eos ?? eos },
            defaultAddBos: family == "llama3");
    }

    // ---------------------------------------------------------------- SentencePiece

    private static ITokenizer FromSentencePiece(string path, TokenizerConfig config)
    {
        byte[] bytes = File.ReadAllBytes(path);
        SentencePieceTokenizer inner;
        try
        {
            using var s = new MemoryStream(bytes, writable: false);
            inner = LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e)
        {
            throw new InvalidDataException($"{path}: not a SentencePiece model Microsoft.ML.Tokenizers can read ({e.Message}).", e);
        }
        var added = new Dictionary<string, (int, bool)>(StringComparer.Ordinal)
        {
            [inner.BeginningOfSentenceToken] = (inner.BeginningOfSentenceId, true),
            [inner.EndOfSentenceToken] = (inner.EndOfSentenceId, true),
            [inner.UnknownToken] = (inner.UnknownId, true),
        };
        config.MergeInto(added);
        int vocab = inner.Vocabulary.Values.Max() + 1;
        return Build(inner, "llama2", added, vocab,
            config with { Bos = config.Bos ?? inner.BeginningOfSentenceToken, Eos = config.Eos ?? inner.EndOfSentenceToken },
            defaultAddBos: true);
    }

    // ---------------------------------------------------------------- shared

    private static string DetectFamily(Dictionary<string, (int Id, bool)> added, TokenizerConfig config)
    {
        if (config.TokenizerClass?.StartsWith("Qwen2", StringComparison.Ordinal) == true) return "qwen2";
        if (added.ContainsKey("<|start_header_id|>") && added.ContainsKey("<|begin_of_text|>")) return "llama3";
        if (added.TryGetValue("<|im_start|>", out var im) && im.Id >= 151643) return "qwen2";
        return "bpe";
    }

    private static MlTokenizerAdapter Build(Tokenizer inner, string family, Dictionary<string, (int, bool)> added, int vocabSize,
        TokenizerConfig config, bool defaultAddBos)
    {
        string? bos = config.Bos, eos = config.Eos, pad = config.Pad;
        if (family == "llama3")
        {
            bos ??= "<|begin_of_text|>";
            eos ??= "<|end_of_text|>";
        }
        if (family == "qwen2")
        {
            eos ??= "<|endoftext|>";
            pad ??= "<|endoftext|>";
        }
        string? Known(string? token) => token is not null && added.ContainsKey(token) ? token : null;
        return new MlTokenizerAdapter(inner, family, added, vocabSize, Known(bos), Known(eos), Known(pad),
            addBos: config.AddBos ?? defaultAddBos, addEos: config.AddEos ?? false);
    }
}
