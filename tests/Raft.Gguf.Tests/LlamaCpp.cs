using System.Collections.Concurrent;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Raft.Gguf.Tests;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0's linux-x64 CPU libllama.so) as an oracle: loads a GGUF file, runs its own forward over a
/// token sequence and returns the logits at every position, or tokenizes text with the file's vocabulary.
/// </summary>
internal static class LlamaCpp
{
    /// <summary>RAFT_REQUIRE_LLAMA_CPP=1 (set by CI): a library that does not load fails the tests instead of skipping them.</summary>
    public static bool Required => Environment.GetEnvironmentVariable("RAFT_REQUIRE_LLAMA_CPP") == "1";

    private static readonly ConcurrentQueue<string> Log = new();

    private static readonly Lazy<string?> LoadError = new(() =>
    {
        try
        {
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                if (level is LLamaLogLevel.Error or LLamaLogLevel.Warning)
                {
                    Log.Enqueue($"[{level}] {message}");
                    while (Log.Count > 200) Log.TryDequeue(out _);
                }
            });
            NativeApi.llama_empty_call();
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    });

    /// <summary>Why llama.cpp cannot run here, or null when its native library loaded.</summary>
    public static string? Unavailable => LoadError.Value;

    /// <summary>The last warnings and errors llama.cpp logged (for failure messages).</summary>
    public static string RecentLog() => string.Join("", Log);

    private static ModelParams Params(string path, int tokens) => new(path)
    {
        ContextSize = (uint)Math.Max(tokens, 32),
        BatchSize = (uint)Math.Max(tokens, 32),
        UBatchSize = (uint)Math.Max(tokens, 32),
        Threads = 2,
        BatchThreads = 2,
        GpuLayerCount = 0,
        // the KV cache in fp32 and no flash attention, so that only the weights' type decides the precision
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
        FlashAttention = false,
    };

    /// <summary>llama.cpp's logits [tokens, vocab] for one sequence, every position's row.</summary>
    public static float[] Logits(string gguf, int[] tokens, out int vocab)
    {
        Assert.Null(Unavailable);
        var p = Params(gguf, tokens.Length);
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        vocab = weights.Vocab.Count;
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, logits: true);
        var result = context.NativeHandle.Decode(batch);
        Assert.True(result == DecodeResult.Ok, $"llama_decode returned {result}. {RecentLog()}");
        var logits = new float[(long)tokens.Length * vocab];
        for (int i = 0; i < tokens.Length; i++)
        {
            var row = context.NativeHandle.GetLogitsIth(i);
            Assert.Equal(vocab, row.Length);
            row.CopyTo(logits.AsSpan(i * vocab, vocab));
        }
        return logits;
    }

    /// <summary>A loaded model kept open for several tokenizations.</summary>
    public static LLamaWeights LoadVocabulary(string gguf)
    {
        Assert.Null(Unavailable);
        return LLamaWeights.LoadFromFile(new ModelParams(gguf) { GpuLayerCount = 0, VocabOnly = true });
    }

    /// <summary>llama.cpp's tokens of <paramref name="text"/> (add_special: BOS/EOS as the file says; parse_special: special-token text becomes its id).</summary>
    public static int[] Tokenize(LLamaWeights weights, string text, bool addSpecial, bool parseSpecial) =>
        weights.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t).ToArray();

    /// <summary>The string value of a metadata key as llama.cpp read it, or null.</summary>
    public static string? Metadata(LLamaWeights weights, string key) => weights.Metadata.TryGetValue(key, out var v) ? v : null;
}

/// <summary>
/// A theory that needs llama.cpp's native library and the fetched tokenizer files it names (relative to
/// ~/.cache/raft-tokenizers or $RAFT_TOKENIZER_FILES): skipped with the reason when either is missing, unless
/// RAFT_REQUIRE_LLAMA_CPP=1 (CI), when it runs and fails.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class LlamaCppTheoryAttribute : TheoryAttribute
{
    public LlamaCppTheoryAttribute(params string[] tokenizerFiles)
    {
        if (LlamaCpp.Required) return;
        if (LlamaCpp.Unavailable is { } why) { Skip = $"llama.cpp (LLamaSharp.Backend.Cpu) does not load: {why} (RAFT_REQUIRE_LLAMA_CPP=1 makes this a failure)."; return; }
        var missing = tokenizerFiles.Where(f => !File.Exists(Path.Combine(TokenizerDirs.Root, f))).ToArray();
        if (missing.Length > 0)
            Skip = $"Tokenizer files absent ({string.Join(", ", missing)} under {TokenizerDirs.Root}): run tests/Raft.Model.Tests/fetch-tokenizers.sh (RAFT_REQUIRE_LLAMA_CPP=1 makes this a failure).";
    }
}

/// <summary>Where tests/Raft.Model.Tests/fetch-tokenizers.sh puts the real tokenizer files.</summary>
internal static class TokenizerDirs
{
    public static string Root =>
        Environment.GetEnvironmentVariable("RAFT_TOKENIZER_FILES") is { Length: > 0 } r
            ? r
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "raft-tokenizers");

    /// <summary>Copies the named files of fetched folder <paramref name="name"/> into <paramref name="destination"/>, failing clearly when one is missing.</summary>
    public static void CopyInto(string name, string destination, params string[] files)
    {
        foreach (string f in files)
        {
            string src = Path.Combine(Root, name, f);
            Assert.True(File.Exists(src), $"{src} is missing: run tests/Raft.Model.Tests/fetch-tokenizers.sh.");
            File.Copy(src, Path.Combine(destination, f), overwrite: true);
        }
    }
}

/// <summary>
/// A fact that needs fetched tokenizer files only: skipped with the reason when they are absent, unless
/// RAFT_REQUIRE_TOKENIZER_FILES=1 or RAFT_REQUIRE_LLAMA_CPP=1 (CI), when it runs and fails on the missing file.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class TokenizerFilesFactAttribute : FactAttribute
{
    public TokenizerFilesFactAttribute(params string[] files)
    {
        if (LlamaCpp.Required || Environment.GetEnvironmentVariable("RAFT_REQUIRE_TOKENIZER_FILES") == "1") return;
        var missing = files.Where(f => !File.Exists(Path.Combine(TokenizerDirs.Root, f))).ToArray();
        if (missing.Length > 0)
            Skip = $"Tokenizer files absent ({string.Join(", ", missing)} under {TokenizerDirs.Root}): run tests/Raft.Model.Tests/fetch-tokenizers.sh (RAFT_REQUIRE_TOKENIZER_FILES=1 makes this a failure).";
    }
}
