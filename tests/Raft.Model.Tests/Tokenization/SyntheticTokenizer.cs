using System.Text;
using System.Text.Json;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Writes a small byte-level BPE tokenizer.json (all 256 byte symbols, a few merges, the given added tokens) so that
/// tokenizer.json parsing and the chat templates' masks are tested without downloaded files.
/// </summary>
internal static class SyntheticTokenizer
{
    public static readonly string[] Merges = ["l l", "e ll", "h ell", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ t", "h e", "Ġt he"];

    public static string WriteTokenizerJson(string dir, IReadOnlyList<string> addedTokens, string? extraConfigJson = null)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.Spell([(byte)b])] = vocab.Count;
        foreach (string m in Merges) vocab.TryAdd(m.Replace(" ", "", StringComparison.Ordinal), vocab.Count);
        int first = 1000;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < addedTokens.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", first + i);
                w.WriteString("content", addedTokens[i]);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WritePropertyName("pre_tokenizer");
            using (var pre = JsonDocument.Parse("""
                {"type":"Sequence","pretokenizers":[
                  {"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},
                  {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}
                """))
                pre.RootElement.WriteTo(w);
            w.WritePropertyName("decoder");
            using (var dec = JsonDocument.Parse("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"""))
                dec.RootElement.WriteTo(w);
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteStartObject("vocab");
            foreach (var (k, v) in vocab) w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            for (int mi = 0; mi < Merges.Length; mi++)
            {
                string m = Merges[mi];
                // Newer tokenizer.json files write merges as pairs, older ones as "a b"; use both.
                if (mi % 2 == 0) w.WriteStringValue(m);
                else
                {
                    w.WriteStartArray();
                    foreach (string part in m.Split(' ')) w.WriteStringValue(part);
                    w.WriteEndArray();
                }
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.json"), ms.ToArray());
        if (extraConfigJson is not null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), extraConfigJson, new UTF8Encoding(false));
        return dir;
    }

    public static readonly string[] ChatMlTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    public static readonly string[] Llama3Tokens = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
}
