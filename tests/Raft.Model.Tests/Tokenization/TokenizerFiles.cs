using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Where the real tokenizer files fetched by tests/Raft.Model.Tests/fetch-tokenizers.sh live:
/// $RAFT_TOKENIZER_FILES, or ~/.cache/raft-tokenizers.
/// </summary>
internal static class TokenizerFiles
{
    public static string Root =>
        Environment.GetEnvironmentVariable("RAFT_TOKENIZER_FILES") is { Length: > 0 } r
            ? r
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "raft-tokenizers");

    /// <summary>RAFT_REQUIRE_TOKENIZER_FILES=1: missing files fail the tests instead of skipping them (CI).</summary>
    public static bool Required => Environment.GetEnvironmentVariable("RAFT_REQUIRE_TOKENIZER_FILES") == "1";

    public static string Dir(string name) => Path.Combine(Root, name);

    /// <summary>The directory, after checking the files are there (a clear failure when RAFT_REQUIRE_TOKENIZER_FILES=1 forced the run).</summary>
    public static string Require(string name, params string[] files)
    {
        string dir = Dir(name);
        foreach (string f in files)
            Assert.True(File.Exists(Path.Combine(dir, f)),
                $"{Path.Combine(dir, f)} is missing: run tests/Raft.Model.Tests/fetch-tokenizers.sh.");
        return dir;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<ITokenizer>> Loaded = new();

    /// <summary>The tokenizer in fetched folder <paramref name="name"/>, loaded once per test run (they are large).</summary>
    public static ITokenizer Load(string name, string file) =>
        Loaded.GetOrAdd(name, n => new Lazy<ITokenizer>(() => TokenizerLoader.FromDirectory(Require(n, file)))).Value;

    /// <summary>
    /// Writes the tiktoken vocabulary embedded in a Microsoft.ML.Tokenizers.Data.* package into <paramref name="dir"/> as a
    /// standard *.tiktoken file ("base64 rank" lines). The package stores it deflated, as a "Capacity: N" line followed by
    /// one base64 token a line, the rank being the line's index.
    /// </summary>
    public static string ExtractTiktokenData(string assemblyName, string resourceName, string dir)
    {
        var asm = System.Reflection.Assembly.Load(new System.Reflection.AssemblyName(assemblyName));
        using var s = asm.GetManifestResourceStream(resourceName)
            ?? throw new InvalidOperationException($"{asm.GetName().Name} has no resource {resourceName}; it has {string.Join(", ", asm.GetManifestResourceNames())}.");
        string path = System.IO.Path.Combine(dir, resourceName.Replace(".deflate", "", StringComparison.Ordinal));
        using var reader = new StreamReader(new DeflateStream(s, CompressionMode.Decompress));
        using var writer = new StreamWriter(path, append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        int rank = 0;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            if (line.StartsWith("Capacity:", StringComparison.Ordinal) || line.Length == 0) continue;
            writer.WriteLine(line.Contains(' ') ? line : $"{line} {rank}");
            rank++;
        }
        return path;
    }

    /// <summary>
    /// Rewrites a byte-level tokenizer.json's model as Qwen2's slow-tokenizer files (vocab.json, merges.txt) and its
    /// added tokens as tokenizer_config.json's added_tokens_decoder, into <paramref name="dir"/>.
    /// </summary>
    public static void WriteVocabAndMerges(string tokenizerJson, string dir)
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllBytes(tokenizerJson));
        var model = doc.RootElement.GetProperty("model");
        using (var f = System.IO.File.Create(System.IO.Path.Combine(dir, "vocab.json")))
        using (var w = new Utf8JsonWriter(f))
        {
            w.WriteStartObject();
            foreach (var p in model.GetProperty("vocab").EnumerateObject()) w.WriteNumber(p.Name, p.Value.GetInt32());
            w.WriteEndObject();
        }
        var sb = new StringBuilder("#version: 0.2\n");
        foreach (var m in model.GetProperty("merges").EnumerateArray())
            sb.Append(m.ValueKind == JsonValueKind.Array ? m[0].GetString() + " " + m[1].GetString() : m.GetString()).Append('\n');
        System.IO.File.WriteAllText(System.IO.Path.Combine(dir, "merges.txt"), sb.ToString(), new UTF8Encoding(false));
        using (var f = System.IO.File.Create(System.IO.Path.Combine(dir, "tokenizer_config.json")))
        using (var w = new Utf8JsonWriter(f))
        {
            w.WriteStartObject();
            w.WriteString("tokenizer_class", "Qwen2Tokenizer");
            w.WriteStartObject("added_tokens_decoder");
            foreach (var a in doc.RootElement.GetProperty("added_tokens").EnumerateArray())
            {
                w.WriteStartObject(a.GetProperty("id").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture));
                w.WriteString("content", a.GetProperty("content").GetString());
                w.WriteBoolean("special", a.GetProperty("special").GetBoolean());
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
    }

    /// <summary>
    /// Rewrites a byte-level tokenizer.json's vocabulary in tiktoken's format (base64 of the token's bytes, a space, the
    /// id; one a line), as Meta ships Llama 3's original tokenizer.model, into <paramref name="path"/>.
    /// </summary>
    public static void WriteTiktoken(string tokenizerJson, string path)
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllBytes(tokenizerJson));
        var entries = new List<(int Id, byte[] Bytes)>();
        foreach (var p in doc.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject())
        {
            Assert.True(ByteLevelAlphabet.TryGetBytes(p.Name, out byte[] bytes), $"token {p.Name} is not byte-level");
            entries.Add((p.Value.GetInt32(), bytes));
        }
        var sb = new StringBuilder();
        foreach (var (id, bytes) in entries.OrderBy(e => e.Id))
            sb.Append(Convert.ToBase64String(bytes)).Append(' ').Append(id.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        System.IO.File.WriteAllText(path, sb.ToString(), new UTF8Encoding(false));
    }
}

/// <summary>
/// A fact that needs fetched tokenizer files (relative to <see cref="TokenizerFiles.Root"/>): skipped with the reason
/// when they are absent, unless RAFT_REQUIRE_TOKENIZER_FILES=1, when it runs and fails on the missing file.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class TokenizerFilesFactAttribute : FactAttribute
{
    public TokenizerFilesFactAttribute(params string[] files)
    {
        if (TokenizerFiles.Required) return;
        var missing = files.Where(f => !File.Exists(Path.Combine(TokenizerFiles.Root, f))).ToArray();
        if (missing.Length > 0)
            Skip = $"Tokenizer files absent ({string.Join(", ", missing)} under {TokenizerFiles.Root}): " +
                   "run tests/Raft.Model.Tests/fetch-tokenizers.sh (RAFT_REQUIRE_TOKENIZER_FILES=1 makes this a failure).";
    }
}
