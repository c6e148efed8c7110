using Raft.Cli;
using Raft.Model;
using Raft.Model.Gguf;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;
using Raft.Teacher;

namespace Raft.Fuzz;

/// <summary>Runs one input through a parser: null when it was read, the parser's typed error (naming the file) when it refused it.</summary>
public delegate Exception? FuzzInput(ReadOnlySpan<byte> data);

/// <summary>
/// A parser under fuzzing: its name (<c>Raft.Fuzz NAME</c>), what it reads, and <see cref="Run"/>, which writes the input
/// where the parser expects a file (one path per process) and calls it. The parser's typed error (the exception type the
/// reader documents) whose message names the file is an expected outcome; anything else escapes as a crash: another
/// exception type, or a typed error that does not name the file (<see cref="FuzzFindingException"/>).
/// </summary>
public sealed class FuzzTarget(string name, string reads, FuzzInput run)
{
    /// <summary>The target's name on the command line.</summary>
    public string Name { get; } = name;
    /// <summary>What the target feeds the input to.</summary>
    public string Reads { get; } = reads;
    /// <summary>
    /// Runs one input: null when the parser read it, its typed error naming the file when it refused it. Managed memory
    /// allocated beyond <see cref="AllocationCap"/> for the input is a finding too (a length field believed before the
    /// file was checked to hold it).
    /// </summary>
    public Exception? Run(ReadOnlySpan<byte> data)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var refused = run(data);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated > AllocationCap(data.Length))
            throw new FuzzFindingException($"{Name}: {allocated} bytes allocated for an input of {data.Length} bytes (the cap is {AllocationCap(data.Length)}).", null);
        return refused;
    }

    /// <summary>The managed bytes one input may allocate: 64 MiB plus 256 per input byte (what reading a file of that size and its text may take).</summary>
    public static long AllocationCap(long inputBytes) => (64L << 20) + 256 * inputBytes;
}

/// <summary>A typed error that broke the parser's contract (e.g. its message does not name the file): a crash for the fuzzer.</summary>
public sealed class FuzzFindingException(string message, Exception? inner) : Exception(message, inner);

/// <summary>Every parser's fuzz target and the folder its inputs are written to.</summary>
public static class FuzzTargets
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        string root = Path.Combine(Path.GetTempPath(), $"raft-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return root;
    });

    /// <summary>A folder of this process for <paramref name="target"/>'s files (created once).</summary>
    private static string Folder(string target)
    {
        string dir = Path.Combine(s_root.Value, target);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Writes the input to <paramref name="path"/>, replacing what an earlier input left.</summary>
    private static void Put(string path, ReadOnlySpan<byte> data)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        f.Write(data);
    }

    /// <summary>
    /// Runs <paramref name="parse"/>; an exception for which <paramref name="expected"/> holds is an expected outcome when its
    /// message names one of <paramref name="files"/>, a finding when it does not; any other exception escapes unchanged.
    /// </summary>
    /// <returns>Null when <paramref name="parse"/> returned, the expected exception when it was refused.</returns>
    private static Exception? Expect(Action parse, Func<Exception, bool> expected, params string[] files)
    {
        try
        {
            parse();
            return null;
        }
        catch (Exception e) when (expected(e))
        {
            if (!files.Any(f => e.Message.Contains(f, StringComparison.Ordinal)))
                throw new FuzzFindingException($"{e.GetType().Name} does not name the file ({string.Join(" or ", files)}): {e.Message}", e);
            return e;
        }
    }

    private static bool IsInvalidData(Exception e) => e is InvalidDataException;

    /// <summary>The tiny decoder config of the sharded-index target's checkpoint (and of the seed ONNX model).</summary>
    internal static ModelConfig TinyConfig() => new()
    {
        ModelType = "llama", HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1, NumAttentionHeads = 2,
        NumKeyValueHeads = 1, VocabSize = 11, TieWordEmbeddings = true, MaxPositionEmbeddings = 32,
    };

    /// <summary>Weights (fixed seed) of <see cref="TinyConfig"/>.</summary>
    internal static TensorSet TinyWeights(ModelConfig config)
    {
        var rng = new Random(7);
        var set = new TensorSet();
        foreach (var (name, shape) in config.TensorShapes())
        {
            var t = Tensor.Zeros(name, shape);
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)Math.Round(rng.NextDouble() * 2 - 1, 2);
            set.Add(t);
        }
        return set;
    }

    /// <summary>The shards of the sharded-index target: the tiny model's tensors split over two files (name → shard).</summary>
    internal static IReadOnlyList<(string Name, string Shard)> TinyShardMap(ModelConfig config) =>
        [.. config.TensorShapes().Select((t, i) => (t.Name, i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"))];

    /// <summary>Writes the tiny checkpoint's config.json and two shards into <paramref name="dir"/> (no index).</summary>
    internal static void WriteShardedCheckpoint(string dir)
    {
        var config = TinyConfig();
        var weights = TinyWeights(config);
        File.WriteAllText(Path.Combine(dir, Checkpoint.ConfigFile), config.ToJson());
        foreach (var group in TinyShardMap(config).GroupBy(p => p.Shard))
            SafeTensorsWriter.Write(Path.Combine(dir, group.Key), group.Select(p => weights[p.Name]));
    }

    private static readonly Lazy<string> s_shardedDir = new(() =>
    {
        string dir = Folder("safetensors-index");
        WriteShardedCheckpoint(dir);
        return dir;
    });

    /// <summary>The tokenizer.json the tokenizer-config target pairs its inputs with (and the tokenizer target's seed).</summary>
    internal static readonly byte[] TokenizerJson = System.Text.Encoding.UTF8.GetBytes(
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":5,\"content\":\"<|end|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]," +
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}," +
        "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"c\":4},\"merges\":[\"a b\"]}}");

    /// <summary>The tokenizer_config.json the tokenizer target pairs its inputs with (and the tokenizer-config target's seed).</summary>
    internal static readonly byte[] TokenizerConfigJson = System.Text.Encoding.UTF8.GetBytes(
        "{\"eos_token\":\"<|end|>\",\"bos_token\":null,\"add_bos_token\":false,\"chat_template\":\"{% for m in messages %}{{ m['content'] }}{% endfor %}\"}");

    private static Exception? Tokenizer(ReadOnlySpan<byte> tokenizer, ReadOnlySpan<byte> config, string folder)
    {
        string dir = Folder(folder);
        string t = Path.Combine(dir, "tokenizer.json"), c = Path.Combine(dir, "tokenizer_config.json");
        Put(t, tokenizer);
        Put(c, config);
        return Expect(() => TokenizerLoader.FromDirectory(dir).Encode("ab c"), e => e is InvalidDataException or NotSupportedException, t, c);
    }

    /// <summary>The targets, by name.</summary>
    public static IReadOnlyDictionary<string, FuzzTarget> All { get; } = new FuzzTarget[]
    {
        new("safetensors", "a .safetensors file: SafeTensorsFile.Open, then every F32/F16/BF16 tensor read", data =>
        {
            string path = Path.Combine(Folder("safetensors"), "model.safetensors");
            Put(path, data);
            long length = data.Length;
            return Expect(() =>
            {
                using var f = SafeTensorsFile.Open(path);
                foreach (var t in f.Tensors)
                {
                    if (t.End > f.DataLength || t.End - t.Begin > length)
                        throw new InvalidOperationException($"{t.Name}: [{t.Begin}, {t.End}) lies beyond the file's {length} bytes.");
                    if (t.DType is "F32" or "F16" or "BF16" && t.ElementCount <= length) f.Read(t.Name);
                }
            }, IsInvalidData, path);
        }),
        new("safetensors-index", "model.safetensors.index.json of a two-shard tiny checkpoint: Checkpoint.Load", data =>
        {
            string dir = s_shardedDir.Value;
            string path = Path.Combine(dir, Checkpoint.IndexFile);
            Put(path, data);
            return Expect(() => Checkpoint.Load(dir), IsInvalidData, path, Path.GetFullPath(path), dir);
        }),
        new("npy", "a float32 .npy file of rank 2: NpyFile.ReadFloat32", data =>
        {
            string path = Path.Combine(Folder("npy"), "logits.npy");
            Put(path, data);
            long length = data.Length;
            return Expect(() =>
            {
                var a = NpyFile.ReadFloat32(path, 2, "[rows, vocab]");
                if (a.Data.LongLength * 4 > length) throw new InvalidOperationException($"{a.Data.LongLength} elements read from {length} bytes.");
            }, e => e is NpyFormatException, path);
        }),
        new("jsonl", "JSONL training data: JsonlDataset.Load, strict and skipping bad lines", data =>
        {
            string path = Path.Combine(Folder("jsonl"), "data.jsonl");
            Put(path, data);
            var strict = Expect(() => JsonlDataset.Load(path, false, _ => { }), e => e is DataFormatException, path);
            return Expect(() => JsonlDataset.Load(path, true, _ => { }), e => e is DataFormatException, path) ?? strict;
        }),
        new("eval-set", "a JSONL evaluation set: EvalSet.Load, strict and skipping bad lines", data =>
        {
            string path = Path.Combine(Folder("eval-set"), "set.jsonl");
            Put(path, data);
            var strict = Expect(() => EvalSet.Load(path, skipBadLines: false, log: _ => { }), e => e is DataFormatException, path);
            return Expect(() => EvalSet.Load(path, skipBadLines: true, log: _ => { }), e => e is DataFormatException, path) ?? strict;
        }),
        new("config", "config.json: ModelConfig.Load", data =>
        {
            string path = Path.Combine(Folder("config"), "config.json");
            Put(path, data);
            return Expect(() => ModelConfig.Load(path), e => e is InvalidDataException or ArgumentException, path);
        }),
        new("tokenizer", "tokenizer.json (beside a fixed tokenizer_config.json): TokenizerLoader.FromDirectory, then Encode",
            data => Tokenizer(data, TokenizerConfigJson, "tokenizer")),
        new("tokenizer-config", "tokenizer_config.json (beside a fixed tokenizer.json): TokenizerLoader.FromDirectory, then Encode",
            data => Tokenizer(TokenizerJson, data, "tokenizer-config")),
        new("teacher-cache", "a teacher top-K cache: TeacherCacheFile.Read", data =>
        {
            string path = Path.Combine(Folder("teacher-cache"), "teacher.cache");
            Put(path, data);
            return Expect(() => TeacherCacheFile.Read(path), IsInvalidData, path);
        }),
        new("onnx", "model.onnx: TeacherSession.Open on ONNX Runtime's CPU provider (the graph's metadata: signature, vocabulary, KV shapes)", data =>
        {
            string dir = Folder("onnx");
            string path = Path.Combine(dir, OnnxExporter.ModelFile);
            Put(path, data);
            return Expect(() =>
            {
                using var s = TeacherSession.Open(dir, new TeacherOptions { Provider = Raft.Kernels.ComputeDevice.Cpu, IntraOpThreads = 1, Log = _ => { } });
            }, IsInvalidData, path);
        }),
        new("gguf", "a .gguf file: GgufReader.Open, then every tensor read", data =>
        {
            string path = Path.Combine(Folder("gguf"), "model.gguf");
            Put(path, data);
            long length = data.Length;
            return Expect(() =>
            {
                var r = GgufReader.Open(path);
                foreach (var t in r.Tensors)
                {
                    if (t.ByteCount > length) throw new InvalidOperationException($"{t.Name}: {t.ByteCount} bytes from a {length}-byte file.");
                    r.ReadTensor(t.Name);
                }
            }, IsInvalidData, path);
        }),
    }.ToDictionary(t => t.Name, StringComparer.Ordinal);
}
