using System.Text.Json;

namespace Raft.Model.Tokenization;

/// <summary>What tokenizer_config.json says that the loader uses (every field optional).</summary>
internal sealed record TokenizerConfig
{
    public string? Bos { get; init; }
    public string? Eos { get; init; }
    public string? Pad { get; init; }
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public string? TokenizerClass { get; init; }
    public Dictionary<string, (int Id, bool Special)> Added { get; init; } = new(StringComparer.Ordinal);

    public static TokenizerConfig Read(string path)
    {
        if (!File.Exists(path)) return new TokenizerConfig();
        try
        {
            var bytes = File.ReadAllBytes(path);
            Utf8Check.Require(bytes, path, "the file");
            using var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = true });
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: not a JSON object.");
            var added = new Dictionary<string, (int, bool)>(StringComparer.Ordinal);
            if (r.TryGetProperty("added_tokens_decoder", out var atd) && atd.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in atd.EnumerateObject())
                {
                    if (!int.TryParse(p.Name, out int id) || id < 0 || p.Value.ValueKind != JsonValueKind.Object ||
                        !p.Value.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"{path}: added_tokens_decoder[\"{p.Name}\"] needs an integer key and a string \"content\".");
                    bool special = p.Value.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                    added[c.GetString()!] = (id, special);
                }
            }
            return new TokenizerConfig
            {
                Bos = TokenText(r, "bos_token"),
                Eos = TokenText(r, "eos_token"),
                Pad = TokenText(r, "pad_token"),
                AddBos = Bool(r, "add_bos_token"),
                AddEos = Bool(r, "add_eos_token"),
                TokenizerClass = r.TryGetProperty("tokenizer_class", out var tc) && tc.ValueKind == JsonValueKind.String ? tc.GetString() : null,
                Added = added,
            };
        }
        // InvalidOperationException: a string with a lone surrogate escape (\uDDDD) fails only when it is read
        catch (Exception e) when (e is JsonException || JsonStringErrors.IsFromJson(e))
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>A token given as "text" or as {"content": "text", …}.</summary>
    private static string? TokenText(JsonElement r, string name)
    {
        if (!r.TryGetProperty(name, out var e)) return null;
        return e.ValueKind switch
        {
            JsonValueKind.String => e.GetString(),
            JsonValueKind.Object when e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
    }

    private static bool? Bool(JsonElement r, string name) =>
        r.TryGetProperty(name, out var e) && e.ValueKind is JsonValueKind.True or JsonValueKind.False ? e.GetBoolean() : null;

    /// <summary>Adds this config's added tokens to <paramref name="added"/> (tokenizer.json's entries win on a clash of text).</summary>
    public void MergeInto(Dictionary<string, (int, bool)> added)
    {
        foreach (var (text, v) in Added) added.TryAdd(text, v);
    }
}
