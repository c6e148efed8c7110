using System.Text;
using System.Text.Json;

namespace Raft.Model;

/// <summary>
/// A model checkpoint directory in Hugging Face's layout: <c>config.json</c> plus either <c>model.safetensors</c>
/// or shards listed by <c>model.safetensors.index.json</c> (<c>{"weight_map": {name: file}}</c>). Optimizer state
/// (<see cref="AdamW"/>) and any extra files a trainer adds live beside them.
/// </summary>
public static class Checkpoint
{
    /// <summary>The config file name.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>The single-file weights name.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>The shard index name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>
    /// Loads and checks a checkpoint: every tensor that <see cref="ModelConfig.TensorShapes"/> expects must be present
    /// with that shape, in F32, F16 or BF16 (converted to fp32). A missing tensor, a wrong shape, an unreadable dtype,
    /// a truncated file, a bad header, data offsets out of range or overlapping, or a tensor the architecture does not
    /// have each raise an <see cref="InvalidDataException"/> naming the tensor and the file. A tied model's
    /// <c>lm_head.weight</c>, when present, is ignored, as are rotary <c>inv_freq</c> buffers.
    /// </summary>
    /// <returns>The config and the weights, in <see cref="ModelConfig.TensorShapes"/> order.</returns>
    public static (ModelConfig Config, TensorSet Weights) Load(string directory)
    {
        var (config, weights, _) = LoadCore(directory, SafeTensorDType.F32);
        return (config, weights);
    }

    /// <summary>
    /// Loads a checkpoint for inference only (a frozen teacher, rollouts, refinement, evaluation) with its matrices
    /// (embedding, projections, lm_head) kept in <paramref name="matrices"/>: BF16 or F16 tensors of that dtype are kept
    /// as stored (not widened), F32 ones are rounded to it (nearest even); norms and biases are read as fp32. A matrix
    /// stored in the other 16-bit dtype is an error naming the tensor, its dtype and the file (converting between BF16 and
    /// F16 would lose bits or range). With F32 this is <see cref="Load"/>. The same checks as <see cref="Load"/> apply.
    /// </summary>
    public static (ModelConfig Config, TensorSet Weights, IReadOnlyList<HalfMatrix> Matrices) LoadForInference(string directory, SafeTensorDType matrices)
        => LoadCore(directory, matrices);

    /// <summary>Loads a checkpoint as a model: <see cref="Load"/> for F32, else <see cref="LoadForInference"/> (an inference-only model).</summary>
    public static LlamaModel LoadModel(string directory, SafeTensorDType matrices = SafeTensorDType.F32)
    {
        var (config, weights, halves) = LoadCore(directory, matrices);
        return new LlamaModel(config, weights, halves);
    }

    /// <summary>
    /// The dtype a checkpoint stores its matrices (embedding, projections, lm_head) in: BF16 or F16 when every one is
    /// stored so, else F32 (fp32 or mixed). Reads the headers only; what <c>auto</c> weights options resolve to.
    /// </summary>
    public static SafeTensorDType StoredMatrixDType(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{directory}: no {ConfigFile}.", configPath);
        var layout = DecoderLayout.For(ModelConfig.Load(configPath));
        var files = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            var (source, _) = OpenSources(directory, files);
            var kinds = new HashSet<SafeTensorDType>();
            foreach (var spec in layout.Tensors.Where(t => t.Role == TensorRole.Matrix))
                if (source.TryGetValue(spec.Name, out var f))
                    kinds.Add(SafeTensorDTypes.TryParse(f[spec.Name].DType, out var d) ? d : SafeTensorDType.F32);
            return kinds.Count == 1 ? kinds.Single() : SafeTensorDType.F32;
        }
        finally
        {
            foreach (var f in files.Values) f.Dispose();
        }
    }

    // name → the file that holds it (the index's word for sharded checkpoints), the files opened into `files`
    private static (Dictionary<string, SafeTensorsFile> Source, string Described) OpenSources(string directory, Dictionary<string, SafeTensorsFile> files)
    {
        var source = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        string single = Path.Combine(directory, WeightsFile), index = Path.Combine(directory, IndexFile);
        string described;
        if (File.Exists(single))
        {
            var f = SafeTensorsFile.Open(single);
            files[single] = f;
            foreach (var t in f.Tensors) source[t.Name] = f;
            described = f.Path;
        }
        else if (File.Exists(index))
        {
            described = Path.GetFullPath(index);
            foreach (var (name, shard) in ReadIndex(index))
            {
                string shardPath = Path.Combine(directory, shard);
                if (!files.TryGetValue(shardPath, out var f))
                {
                    if (!File.Exists(shardPath))
                        throw new InvalidDataException($"{described}: tensor {name} is mapped to {shard}, which does not exist.");
                    files[shardPath] = f = SafeTensorsFile.Open(shardPath);
                }
                if (!f.Contains(name))
                    throw new InvalidDataException($"tensor {name} is missing from {f.Path} (where {described} maps it).");
                source[name] = f;
            }
        }
        else throw new FileNotFoundException($"{directory}: neither {WeightsFile} nor {IndexFile} is there.", single);
        return (source, described);
    }

    private static (ModelConfig Config, TensorSet Weights, IReadOnlyList<HalfMatrix> Matrices) LoadCore(string directory, SafeTensorDType matrices)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{directory}: no {ConfigFile}.", configPath);
        var config = ModelConfig.Load(configPath);
        var layout = DecoderLayout.For(config);
        var expected = config.TensorShapes();

        var files = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            var (source, described) = OpenSources(directory, files);

            foreach (var (name, f) in source)
            {
                if (layout.Contains(name) || layout.IsIgnorable(name)) continue;
                throw new InvalidDataException(
                    $"tensor {name} in {f.Path} is not part of the {config.ModelType} architecture that {ConfigFile} describes.");
            }

            var weights = new TensorSet();
            var halves = new List<HalfMatrix>();
            var matrixNames = matrices == SafeTensorDType.F32 ? [] :
                layout.Tensors.Where(t => t.Role == TensorRole.Matrix).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var (name, shape) in expected)
            {
                if (!source.TryGetValue(name, out var f))
                    throw new InvalidDataException($"tensor {name} is missing from {described}.");
                var info = f[name];
                if (!info.Shape.SequenceEqual(shape.Select(d => (long)d)))
                    throw new InvalidDataException(
                        $"tensor {name} in {f.Path} has shape {info.ShapeText}, {ConfigFile} needs [{string.Join(", ", shape)}].");
                if (matrixNames.Contains(name) && SafeTensorDTypes.TryParse(info.DType, out var stored) && stored != SafeTensorDType.F32)
                {
                    if (stored != matrices)
                        throw new InvalidDataException($"tensor {name} in {f.Path} is stored as {info.DType}; it cannot be kept as " +
                            $"{matrices.HeaderName()} without losing {(matrices == SafeTensorDType.BF16 ? "mantissa bits" : "range")} " +
                            $"(ask for {(stored == SafeTensorDType.BF16 ? "bf16" : "fp16")} or fp32 weights).");
                    var bits = new ushort[info.ElementCount];
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(f.RawBytes(name)).CopyTo(bits);
                    halves.Add(new HalfMatrix(name, shape, bits, stored));
                    continue;
                }
                var data = new float[info.ElementCount];
                f.ReadInto(name, data);
                var tensor = new Tensor(name, shape, data);
                if (matrixNames.Contains(name)) halves.Add(HalfMatrix.FromSingle(tensor, matrices));
                else weights.Add(tensor);
            }
            return (config, weights, halves);
        }
        finally
        {
            foreach (var f in files.Values) f.Dispose();
        }
    }

    // NAME_MAX of Linux file systems (and of NTFS in UTF-16 units): a longer shard name cannot be a file
    private const int MaxFileNameBytes = 255;

    /// <summary>Reads a shard index's weight_map (tensor name → shard file name, which must be a plain file name in the same directory).</summary>
    internal static List<(string Name, string Shard)> ReadIndex(string indexPath)
    {
        indexPath = Path.GetFullPath(indexPath);
        try
        {
            var bytes = File.ReadAllBytes(indexPath);
            // JsonDocument lets invalid UTF-8 inside strings through, then fails reading them without naming the file
            Utf8Check.Require(bytes, indexPath, "the index");
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: no \"weight_map\" object.");
            var list = new List<(string, string)>();
            string? previous = null;
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{indexPath}: tensor {p.Name} must map to a file name, got {p.Value.ValueKind}.");
                // an index names a few shards thousands of times: one string per run of the same shard
                string shard = previous != null && p.Value.ValueEquals(previous) ? previous : p.Value.GetString()!;
                previous = shard;
                if (Encoding.UTF8.GetByteCount(shard) > MaxFileNameBytes)
                    throw new InvalidDataException($"{indexPath}: tensor {p.Name} maps to a shard name of {shard.Length} characters, longer than a file name can be ({MaxFileNameBytes} bytes).");
                if (shard.Length == 0 || Path.GetFileName(shard) != shard || shard is "." or "..")
                    throw new InvalidDataException($"{indexPath}: tensor {p.Name} maps to \"{shard}\", which is not a file name in the checkpoint directory.");
                list.Add((p.Name, shard));
            }
            return list;
        }
        // InvalidOperationException: a string with a lone surrogate escape (\uDDDD) fails only when it is read
        catch (Exception e) when (e is JsonException || JsonStringErrors.IsFromJson(e))
        {
            throw new InvalidDataException($"{indexPath}: not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>
    /// Saves a checkpoint atomically: <c>config.json</c>, <c>model.safetensors</c> (the tensors in
    /// <see cref="ModelConfig.TensorShapes"/> order, with <c>{"format": "pt"}</c> metadata as Hugging Face expects),
    /// the optimizer's state when given, and whatever <paramref name="writeExtra"/> adds, are written into a staging
    /// directory beside <paramref name="directory"/>, which then replaces it. If anything fails the previous checkpoint
    /// is left as it was and no partial one is visible.
    /// </summary>
    /// <param name="directory">The checkpoint directory (created, or replaced as a whole).</param>
    /// <param name="config">The model's config.</param>
    /// <param name="weights">Every tensor the config expects, with its shape; a tied model's lm_head.weight, if present, is not written.</param>
    /// <param name="optimizer">Optimizer state to save beside the weights (see <see cref="AdamW.SaveState"/>), or null.</param>
    /// <param name="writeExtra">Called with the staging directory to add further files (trainer state, tokenizer files), or null.</param>
    /// <param name="dtype">F32 (default, bit-exact) or BF16 for the weights; optimizer state is always F32.</param>
    public static void Save(string directory, ModelConfig config, TensorSet weights, AdamW? optimizer = null,
        Action<string>? writeExtra = null, SafeTensorDType dtype = SafeTensorDType.F32)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        var ordered = new List<Tensor>();
        foreach (var (name, shape) in config.TensorShapes())
        {
            if (!weights.TryGet(name, out var t)) throw new ArgumentException($"tensor {name} is missing from the weights to save.", nameof(weights));
            if (!t.Shape.SequenceEqual(shape))
                throw new ArgumentException($"tensor {name} has shape {t.ShapeText}, the config needs [{string.Join(", ", shape)}].", nameof(weights));
            ordered.Add(t);
        }
        var toWrite = config with { TorchDtype = dtype == SafeTensorDType.BF16 ? "bfloat16" : dtype == SafeTensorDType.F16 ? "float16" : "float32" };
        AtomicFile.WriteDirectory(directory, staging =>
        {
            AtomicFile.WriteText(Path.Combine(staging, ConfigFile), toWrite.ToJson());
            SafeTensorsWriter.Write(Path.Combine(staging, WeightsFile), ordered, dtype,
                new Dictionary<string, string> { ["format"] = "pt" });
            optimizer?.SaveState(staging);
            writeExtra?.Invoke(staging);
        });
    }
}
