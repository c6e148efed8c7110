using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Raft.Kernels;

namespace Raft.Teacher;

/// <summary>How a <see cref="TeacherSession"/> is opened.</summary>
public sealed record TeacherOptions
{
    /// <summary>
    /// The ONNX Runtime execution provider to ask for: <see cref="ComputeDevice.Auto"/> (CUDA when it can be started,
    /// the CPU otherwise), <see cref="ComputeDevice.Cpu"/> (the CPU provider only) or <see cref="ComputeDevice.Cuda"/>
    /// (CUDA; falls back to the CPU, with a logged reason, unless <see cref="AllowCpuFallback"/> is false).
    /// <see cref="ComputeDevice.CudaC"/> names loss kernels, not a provider: <see cref="TeacherSession.Open"/> refuses it.
    /// </summary>
    public ComputeDevice Provider { get; init; } = ComputeDevice.Auto;
    /// <summary>Intra-op threads of the CPU provider; 0 lets ONNX Runtime choose.</summary>
    public int IntraOpThreads { get; init; }
    /// <summary>With <see cref="ComputeDevice.Cuda"/>: whether a CUDA failure falls back to the CPU (true) or is an error.</summary>
    public bool AllowCpuFallback { get; init; } = true;
    /// <summary>The vocabulary size the model must have (checked against the logits output); null skips the check.</summary>
    public int? ExpectedVocabSize { get; init; }
    /// <summary>CUDA device ordinal.</summary>
    public int CudaDevice { get; init; }
    /// <summary>
    /// With <see cref="ComputeDevice.Cpu"/>: why the CPU alone is asked for, when it was not the user's choice (e.g.
    /// "auto: no CUDA driver", from a caller that probed first), said in the log line instead of "asked for".
    /// </summary>
    public string? CpuReason { get; init; }
    /// <summary>Receives the one line that says which provider runs and why; null writes to standard error.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// The key/value history of a batch of sequences between calls of <see cref="TeacherSession.Forward"/>: the
/// <c>present.*</c> outputs of the previous call, fed back as <c>past_key_values.*</c>. Owns ONNX Runtime memory:
/// dispose it (or let the session that made it be disposed first, then dispose it).
/// </summary>
public sealed class TeacherKvCache : IDisposable
{
    private readonly TeacherSession _owner;
    internal OrtValue[] Past;
    internal IDisposableReadOnlyCollection<OrtValue>? Results;

    internal TeacherKvCache(TeacherSession owner, int batch, OrtValue[] empty)
    {
        _owner = owner; Batch = batch; Past = empty;
    }

    /// <summary>Number of sequences.</summary>
    public int Batch { get; }
    /// <summary>Positions held per sequence (past_sequence_length of the next call).</summary>
    public int Length { get; internal set; }
    internal bool IsDisposed { get; private set; }
    internal bool BelongsTo(TeacherSession s) => ReferenceEquals(_owner, s);

    internal void Replace(IDisposableReadOnlyCollection<OrtValue>? results, OrtValue[] present, int length)
    {
        DisposeValues();
        Results = results; Past = present; Length = length;
    }

    private void DisposeValues()
    {
        if (Results != null) { Results.Dispose(); Results = null; }
        else foreach (var v in Past) v.Dispose();
        Past = [];
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        DisposeValues();
    }
}

/// <summary>
/// The frozen teacher: an ONNX causal LM with a KV cache on ONNX Runtime. The graph's signature is read from its
/// inputs and outputs (<see cref="TeacherSignature"/>): the engine's own export (<see cref="OnnxExporter"/>), Optimum's
/// <c>text-generation-with-past</c> exports (with or without <c>position_ids</c>; the legacy merged decoder with
/// <c>use_cache_branch</c>; fp16/bf16 KV and logits) and ONNX Runtime GenAI model-builder exports (GroupQueryAttention with
/// <c>seqlens_k</c>/<c>total_sequence_length</c>, a <c>genai_config.json</c> beside them). A call returns fp32 logits
/// [batch, seq, vocab] (converted at the boundary when the graph's are fp16 or bf16) and, with a
/// <see cref="TeacherKvCache"/>, extends the cache (prefill, then one-token decode steps). One session must not run two
/// calls at once.
/// </summary>
public sealed class TeacherSession : IDisposable
{
    /// <summary>Optimum's legacy merged decoder file, opened when a folder has no model.onnx.</summary>
    public const string MergedDecoderFile = "decoder_model_merged.onnx";

    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly string[] _inputNames, _outputNames;
    private readonly int[] _pastSlot; // per graph input: its index in the cache, −1 for the others
    private readonly OrtMemoryInfo? _cudaMemory; // set when the provider is CUDA: outputs are bound there (IOBinding)
    private float[] _converted = []; // fp32 logits of an fp16/bf16 graph, reused across calls
    private bool _disposed;

    private TeacherSession(InferenceSession session, string path, string provider, string? fallbackReason, TeacherSignature signature,
        Raft.Model.ModelConfig? config, GenAiConfig? genAi, int cudaDevice)
    {
        _session = session; ModelPath = path; Provider = provider; FallbackReason = fallbackReason; Config = config; GenAi = genAi;
        Signature = signature;
        NumLayers = signature.Layers; KvHeads = signature.KvHeads; HeadDim = signature.HeadDim; VocabSize = signature.Vocab;
        MaxPositions = config?.MaxPositionEmbeddings ?? genAi?.ContextLength;
        _inputNames = [.. signature.Inputs.Select(i => i.Name)];
        _pastSlot = [.. signature.Inputs.Select(i => i.Role == TeacherInputRole.Past ? IndexOf(signature.Past, i.Name) : -1)];
        _outputNames = [signature.Logits, .. signature.Present];
        if (provider == "CUDA")
        {
            CudaDevice = cudaDevice;
            _cudaMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, cudaDevice, OrtMemType.Default);
        }
    }

    private static int IndexOf(IReadOnlyList<string> list, string name)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == name) return i;
        return -1;
    }

    /// <summary>The model file.</summary>
    public string ModelPath { get; }
    /// <summary>The provider that runs: "CUDA" or "CPU".</summary>
    public string Provider { get; }
    /// <summary>Why CUDA was not used though asked for (Auto or Cuda); null when it runs or was not asked for.</summary>
    public string? FallbackReason { get; }
    /// <summary>The graph's inputs and outputs as read when it was opened.</summary>
    public TeacherSignature Signature { get; }
    /// <summary>Decoder layers (pairs of past_key_values inputs).</summary>
    public int NumLayers { get; }
    /// <summary>Key/value heads.</summary>
    public int KvHeads { get; }
    /// <summary>Per-head width.</summary>
    public int HeadDim { get; }
    /// <summary>Vocabulary size (the last axis of logits).</summary>
    public int VocabSize { get; }
    /// <summary>The CUDA device ordinal the session runs on; null on the CPU provider.</summary>
    public int? CudaDevice { get; }
    /// <summary>
    /// Whether calls run through an <see cref="OrtIoBinding"/> with the <c>present.*</c> outputs (the KV cache) kept
    /// on the device and, for <see cref="ForwardOnDevice"/>, the logits too: true on the CUDA provider. On the CPU
    /// provider <see cref="Forward"/> runs the plain <c>InferenceSession.Run</c> path, every output in host memory.
    /// </summary>
    public bool UsesDeviceBinding => _cudaMemory is not null;
    /// <summary>The <c>config.json</c> beside the model, when there is one (positions are then checked against its max_position_embeddings).</summary>
    public Raft.Model.ModelConfig? Config { get; }
    /// <summary>The <c>genai_config.json</c> beside the model, when there is one.</summary>
    public GenAiConfig? GenAi { get; }
    /// <summary>The most positions a sequence may take: config.json's max_position_embeddings, else genai_config.json's context_length; null when neither says.</summary>
    public int? MaxPositions { get; }
    /// <summary>
    /// Whether a call that extends a non-empty cache by more than one position must have batch 1: true for
    /// GroupQueryAttention decoders (a <c>seqlens_k</c> input, or a <c>genai_config.json</c> beside the model), whose
    /// kernel refuses such calls. <see cref="TeacherScorer"/> and <see cref="TeacherGenerator"/> then run those rows one
    /// by one; a direct <see cref="Forward"/> that breaks the rule raises <see cref="ArgumentException"/>.
    /// </summary>
    public bool ChunksNeedBatchOne => Signature.Has(TeacherInputRole.SeqlensK) || GenAi is not null;

    /// <summary>
    /// The model file a teacher folder holds: the <c>genai_config.json</c>'s model.decoder.filename when that file is
    /// there, else <c>model.onnx</c>, else Optimum's legacy <c>decoder_model_merged.onnx</c>; null when none exists.
    /// A path to a file is returned as it is.
    /// </summary>
    public static string? FindModelFile(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (File.Exists(directory)) return Path.GetFullPath(directory);
        string genAi = Path.Combine(directory, GenAiConfig.FileName);
        if (File.Exists(genAi))
        {
            string named = Path.Combine(directory, GenAiConfig.Load(genAi).Filename);
            return File.Exists(named) ? Path.GetFullPath(named) : null;
        }
        foreach (string name in new[] { OnnxExporter.ModelFile, MergedDecoderFile })
        {
            string p = Path.Combine(directory, name);
            if (File.Exists(p)) return Path.GetFullPath(p);
        }
        return null;
    }

    /// <summary>
    /// Opens the model in <paramref name="directory"/> (see <see cref="FindModelFile"/>; or the .onnx file itself). CUDA
    /// is tried first for <see cref="ComputeDevice.Auto"/> and <see cref="ComputeDevice.Cuda"/>; a failure to start it
    /// falls back to the CPU (an error for Cuda without <see cref="TeacherOptions.AllowCpuFallback"/>). One line naming
    /// the provider and, on fallback, the reason goes to <see cref="TeacherOptions.Log"/>. A file that is not an ONNX
    /// model, a signature that is not understood (<see cref="TeacherSignature.Read(InferenceSession, string, TeacherNames?, int?, int?)"/>),
    /// or a vocabulary size other than <see cref="TeacherOptions.ExpectedVocabSize"/> (or than a <c>config.json</c> or
    /// <c>genai_config.json</c> beside it: vocabulary, layers, KV heads, head size) raises <see cref="InvalidDataException"/>
    /// naming the file.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="TeacherOptions.Provider"/> is <see cref="ComputeDevice.CudaC"/>
    /// (loss kernels, not an execution provider) or undefined.</exception>
    public static TeacherSession Open(string directory, TeacherOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        options ??= new TeacherOptions();
        if (options.IntraOpThreads < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.IntraOpThreads, "IntraOpThreads must be >= 0.");
        if (options.Provider is not (ComputeDevice.Auto or ComputeDevice.Cpu or ComputeDevice.Cuda))
            throw new ArgumentException(
                $"Provider = {(Enum.IsDefined(options.Provider) ? ComputeDevices.Name(options.Provider) : ((int)options.Provider).ToString(System.Globalization.CultureInfo.InvariantCulture))}: " +
                "ONNX Runtime runs the teacher on auto, cpu or cuda (cuda-c names the CUDA C loss kernels, not an execution provider).", nameof(options));
        string path = FindModelFile(directory)
            ?? throw new FileNotFoundException(File.Exists(Path.Combine(directory, GenAiConfig.FileName))
                ? $"{directory}: {GenAiConfig.FileName} names {GenAiConfig.Load(Path.Combine(directory, GenAiConfig.FileName)).Filename}, which is not there."
                : $"{directory}: no {OnnxExporter.ModelFile} (nor {MergedDecoderFile}).", Path.Combine(directory, OnnxExporter.ModelFile));
        string folder = Path.GetDirectoryName(path)!;
        string genAiPath = Path.Combine(folder, GenAiConfig.FileName);
        var genAi = File.Exists(genAiPath) ? GenAiConfig.Load(genAiPath) : null;
        string configPath = Path.Combine(folder, Raft.Model.Checkpoint.ConfigFile);
        var config = File.Exists(configPath) ? Raft.Model.ModelConfig.Load(configPath) : null;
        var log = options.Log ?? (line => Console.Error.WriteLine(line));

        // ONNX Runtime believes stored tensors' dimensions before it compares them with their data: checked first
        OnnxModelCheck.Check(path);
        InferenceSession? session = null;
        string provider = "CPU";
        string? reason = null;
        if (options.Provider != ComputeDevice.Cpu)
        {
            try
            {
                // auto: a CUDA provider that cannot start is an expected outcome, said once in our own line below;
                // ONNX Runtime's logger would also print it as a red error ("Failed to load library
                // libonnxruntime_providers_cuda.so ..."), so it only reports fatal errors during the attempt.
                session = options.Provider == ComputeDevice.Auto ? Quietly(() => Create(path, options, cuda: true)) : Create(path, options, cuda: true);
                provider = "CUDA";
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                reason = FirstLine(e.Message);
                if (options.Provider == ComputeDevice.Cuda && !options.AllowCpuFallback)
                    throw new InvalidOperationException($"{path}: the CUDA execution provider could not be started ({reason}) and CPU fallback is disallowed.", e);
            }
        }
        try
        {
            session ??= Create(path, options, cuda: false);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"{path}: ONNX Runtime cannot load this model ({FirstLine(e.Message)}).", e);
        }
        try
        {
            var signature = TeacherSignature.Read(session, path, genAi?.Names,
                config?.KvHeads ?? genAi?.NumKeyValueHeads, config?.HeadDim ?? genAi?.HeadSize);
            int layers = signature.Layers, kvHeads = signature.KvHeads, headDim = signature.HeadDim, vocab = signature.Vocab;
            if (options.ExpectedVocabSize is { } ev && ev != vocab)
                throw new InvalidDataException($"{path}: the model's vocabulary size is {vocab} (logits [batch, seq, {vocab}]), expected {ev}.");
            if (config is not null)
            {
                if (config.VocabSize != vocab)
                    throw new InvalidDataException($"{path}: the model's vocabulary size is {vocab} (logits [batch, seq, {vocab}]), {configPath} says vocab_size {config.VocabSize}.");
                if (config.NumHiddenLayers != layers || config.KvHeads != kvHeads || config.HeadDim != headDim)
                    throw new InvalidDataException($"{path}: the model has {layers} layers of past [batch, {kvHeads}, past, {headDim}], {configPath} says {config.NumHiddenLayers} layers, {config.KvHeads} kv heads, head_dim {config.HeadDim}.");
            }
            if (genAi is not null)
            {
                if (genAi.VocabSize is { } gv && gv != vocab)
                    throw new InvalidDataException($"{path}: the model's vocabulary size is {vocab} (logits [batch, seq, {vocab}]), {genAiPath} says model.vocab_size {gv}.");
                if ((genAi.NumHiddenLayers ?? layers) != layers || (genAi.NumKeyValueHeads ?? kvHeads) != kvHeads || (genAi.HeadSize ?? headDim) != headDim)
                    throw new InvalidDataException($"{path}: the model has {layers} layers of past [batch, {kvHeads}, past, {headDim}], {genAiPath} says " +
                        $"model.decoder.num_hidden_layers {genAi.NumHiddenLayers?.ToString() ?? "-"}, num_key_value_heads {genAi.NumKeyValueHeads?.ToString() ?? "-"}, head_size {genAi.HeadSize?.ToString() ?? "-"}.");
                if (config is not null && genAi.ContextLength is { } cl && cl != config.MaxPositionEmbeddings)
                    throw new InvalidDataException($"{path}: {genAiPath} says model.context_length {cl}, {configPath} max_position_embeddings {config.MaxPositionEmbeddings}.");
            }
            string what = $" ({signature.Describe()})";
            log(reason is null
                ? $"teacher {path}{what}: running on {provider}" + (options.Provider != ComputeDevice.Cpu ? "." : options.CpuReason is { } why ? $" ({why})." : " (asked for).")
                : $"teacher {path}{what}: running on CPU; CUDA was asked for ({options.Provider}) but could not be started: {reason}");
            return new TeacherSession(session, path, provider, reason, signature, config, genAi, options.CudaDevice);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static readonly object s_logLevelLock = new();

    /// <summary>Runs <paramref name="create"/> with ONNX Runtime's (process-wide) logger at fatal severity, then restores its level.</summary>
    private static T Quietly<T>(Func<T> create)
    {
        lock (s_logLevelLock)
        {
            var env = OrtEnv.Instance();
            var level = env.EnvLogLevel;
            env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
            try { return create(); }
            finally { env.EnvLogLevel = level; }
        }
    }

    private static string FirstLine(string s)
    {
        int i = s.IndexOf('\n');
        return (i < 0 ? s : s[..i]).Trim();
    }

    private static InferenceSession Create(string path, TeacherOptions options, bool cuda)
    {
        using var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            InterOpNumThreads = 1,
            IntraOpNumThreads = options.IntraOpThreads,
        };
        if (cuda) so.AppendExecutionProvider_CUDA(options.CudaDevice);
        return new InferenceSession(path, so);
    }

    /// <summary>An empty cache for <paramref name="batch"/> sequences (past length 0), in the graph's KV element type.</summary>
    public TeacherKvCache CreateCache(int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        var empty = new OrtValue[2 * NumLayers];
        for (int i = 0; i < empty.Length; i++)
            empty[i] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, Signature.KvType, [batch, KvHeads, 0, HeadDim]);
        return new TeacherKvCache(this, batch, empty);
    }

    /// <summary>
    /// Runs <paramref name="inputIds"/> [batch·seq] (row-major [batch, seq]) after what <paramref name="cache"/> holds
    /// (nothing when null) and returns logits [batch·seq, vocab] (a new array). The cache, when given, is extended by
    /// seq positions: a prefill is a call on an empty cache, a decode step a call with seq = 1.
    /// <paramref name="attentionMask"/> is [batch, past+seq] (all ones when empty); <paramref name="positionIds"/> is
    /// [batch, seq] (past..past+seq−1 when empty). A graph without an attention_mask or position_ids input (it derives
    /// them itself) takes only the defaults: anything else raises <see cref="ArgumentException"/>. On the CUDA
    /// provider the call goes through an IOBinding: the cache stays on the device and only the logits come back to host memory.
    /// </summary>
    public float[] Forward(ReadOnlySpan<long> inputIds, int batch, int seq, TeacherKvCache? cache = null,
        ReadOnlySpan<long> attentionMask = default, ReadOnlySpan<long> positionIds = default)
    {
        float[] copy = [];
        ForwardWith(inputIds, batch, seq, logits => copy = logits.ToArray(), cache, attentionMask, positionIds);
        return copy;
    }

    /// <summary>
    /// As <see cref="Forward"/>,
    /// but hands the logits [batch·seq, vocab] to <paramref name="consume"/> in ONNX Runtime's own output buffer (no
    /// copy; for an fp16/bf16 graph, in a buffer of the session's that holds them converted to fp32); the span is
    /// valid only during the call.
    /// </summary>
    public void ForwardWith(ReadOnlySpan<long> inputIds, int batch, int seq, LogitsConsumer consume, TeacherKvCache? cache = null,
        ReadOnlySpan<long> attentionMask = default, ReadOnlySpan<long> positionIds = default)
    {
        ArgumentNullException.ThrowIfNull(consume);
        var call = Prepare(inputIds, batch, seq, cache, attentionMask, positionIds);
        if (_cudaMemory is not null)
        {
            using var bound = RunBound(call, batch, seq, cache, OrtMemoryInfo.DefaultInstance);
            consume(Logits(bound.Value));
            return;
        }

        OrtValue[]? ownPast = cache == null ? CreateCache(batch).Past : null;
        var owned = new List<OrtValue>();
        IDisposableReadOnlyCollection<OrtValue>? results = null;
        try
        {
            var pastValues = cache?.Past ?? ownPast!;
            var inputs = Inputs(call, batch, seq, pastValues, owned);
            results = _session.Run(_run, _inputNames, inputs, _outputNames);
            var logitsValue = results[0];
            CheckLogitsShape(logitsValue, batch, seq);
            consume(Logits(logitsValue));
            if (cache != null)
            {
                var present = new OrtValue[2 * NumLayers];
                for (int i = 0; i < present.Length; i++) present[i] = results[i + 1];
                cache.Replace(results, present, call.Total);
                results = null; // the cache owns them now
            }
        }
        finally
        {
            results?.Dispose();
            foreach (var v in owned) v.Dispose();
            if (ownPast != null) foreach (var v in ownPast) v.Dispose();
        }
    }

    /// <summary>The logits of a host-memory output as fp32: the output's own buffer, or a conversion of it.</summary>
    private Span<float> Logits(OrtValue value)
    {
        if (Signature.LogitsType == TensorElementType.Float) return value.GetTensorMutableDataAsSpan<float>();
        var raw = value.GetTensorMutableRawData();
        int n = raw.Length / 2;
        if (_converted.Length < n) _converted = new float[n];
        var dst = _converted.AsSpan(0, n);
        ElementConvert.ToSingle(raw, Signature.LogitsType, dst);
        return dst;
    }

    /// <summary>
    /// As <see cref="Forward"/>, but the logits [batch, seq, vocab] stay in device memory (the <c>logits</c> output
    /// is bound to the CUDA device through an <see cref="OrtIoBinding"/>), for a GPU top-K to read in place. Only on
    /// the CUDA provider (<see cref="UsesDeviceBinding"/>) and for a graph with fp32 logits; otherwise it raises
    /// <see cref="InvalidOperationException"/>.
    /// </summary>
    public TeacherDeviceLogits ForwardOnDevice(ReadOnlySpan<long> inputIds, int batch, int seq, TeacherKvCache? cache = null,
        ReadOnlySpan<long> attentionMask = default, ReadOnlySpan<long> positionIds = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_cudaMemory is null)
            throw new InvalidOperationException($"{ModelPath}: ForwardOnDevice needs the CUDA provider; this session runs on {Provider}{(FallbackReason is null ? "" : $" (CUDA could not be started: {FallbackReason})")}. Use Forward.");
        if (Signature.LogitsType != TensorElementType.Float)
            throw new InvalidOperationException($"{ModelPath}: ForwardOnDevice hands out fp32 logits; this graph's '{Signature.Logits}' is {Signature.LogitsType}. Use Forward (it converts at the boundary).");
        var call = Prepare(inputIds, batch, seq, cache, attentionMask, positionIds);
        return RunBound(call, batch, seq, cache, _cudaMemory);
    }

    /// <summary>One call's host inputs.</summary>
    private readonly record struct Call(long[] Ids, long[] Mask, long[] Pos, int Past, int Total);

    /// <summary>Checks a call's arguments and builds its input arrays.</summary>
    private Call Prepare(ReadOnlySpan<long> inputIds, int batch, int seq, TeacherKvCache? cache,
        ReadOnlySpan<long> attentionMask, ReadOnlySpan<long> positionIds)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        if (seq <= 0) throw new ArgumentOutOfRangeException(nameof(seq), seq, "seq must be > 0.");
        if (inputIds.Length != (long)batch * seq)
            throw new ArgumentException($"inputIds has {inputIds.Length} values, needs [batch, seq] = [{batch}, {seq}].", nameof(inputIds));
        for (int i = 0; i < inputIds.Length; i++)
            if ((ulong)inputIds[i] >= (ulong)VocabSize)
                throw new ArgumentException($"inputIds[{i / seq}, {i % seq}] = {inputIds[i]} is outside the vocabulary 0..{VocabSize - 1}.", nameof(inputIds));
        if (cache != null)
        {
            ObjectDisposedException.ThrowIf(cache.IsDisposed, cache);
            if (!cache.BelongsTo(this)) throw new ArgumentException("the cache was made by another session.", nameof(cache));
            if (cache.Batch != batch) throw new ArgumentException($"the cache holds {cache.Batch} sequences, batch is {batch}.", nameof(cache));
        }
        int past = cache?.Length ?? 0, total = past + seq;
        if (ChunksNeedBatchOne && past > 0 && seq > 1 && batch > 1)
            throw new ArgumentException($"{ModelPath} attends through GroupQueryAttention, which extends a non-empty cache ({past} positions) by {seq} positions only for batch 1, not {batch}: " +
                "feed one position per call, or one sequence.", nameof(batch));
        if (!attentionMask.IsEmpty && attentionMask.Length != (long)batch * total)
            throw new ArgumentException($"attentionMask has {attentionMask.Length} values, needs [batch, past+seq] = [{batch}, {total}].", nameof(attentionMask));
        if (!positionIds.IsEmpty && positionIds.Length != (long)batch * seq)
            throw new ArgumentException($"positionIds has {positionIds.Length} values, needs [batch, seq] = [{batch}, {seq}].", nameof(positionIds));

        long[] ids = inputIds.ToArray();
        long[] mask = attentionMask.IsEmpty ? Fill(batch * total, 1) : attentionMask.ToArray();
        long[] pos = positionIds.ToArray();
        if (positionIds.IsEmpty)
        {
            pos = new long[batch * seq];
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < seq; i++) pos[b * seq + i] = past + i;
        }
        else if (!Signature.Has(TeacherInputRole.PositionIds))
            for (int i = 0; i < pos.Length; i++)
                if (pos[i] != past + i % seq)
                    throw new ArgumentException($"position [{i / seq}, {i % seq}] = {pos[i]}: {ModelPath} has no position_ids input (it derives positions itself), " +
                        $"so only the default positions past..past+seq−1 ({past}..{total - 1}) can be asked for.", nameof(positionIds));
        if (!attentionMask.IsEmpty && !Signature.Has(TeacherInputRole.AttentionMask))
            for (int i = 0; i < mask.Length; i++)
                if (mask[i] != 1)
                    throw new ArgumentException($"attentionMask[{i / total}, {i % total}] = {mask[i]}: {ModelPath} has no attention_mask input, so only an all-ones mask can be asked for.", nameof(attentionMask));
        if (ChunksNeedBatchOne && !attentionMask.IsEmpty)
            for (int i = 0; i < mask.Length; i++)
                if (mask[i] != 1)
                    throw new ArgumentException($"attentionMask[{i / total}, {i % total}] = {mask[i]}: {ModelPath} attends through GroupQueryAttention (seqlens_k: one length per row), which cannot honour holes or left padding: the mask must be all ones.", nameof(attentionMask));

        if (MaxPositions is { } maxPos)
            for (int i = 0; i < pos.Length; i++)
                if (pos[i] < 0 || pos[i] >= maxPos)
                    throw new ArgumentException($"position [{i / seq}, {i % seq}] = {pos[i]} is outside 0..{maxPos - 1} ({(Config is null ? "context_length" : "max_position_embeddings")}).", nameof(positionIds));
        return new Call(ids, mask, pos, past, total);
    }

    /// <summary>The graph's inputs for one call, in <see cref="_inputNames"/>' order; the values made here go to <paramref name="owned"/>.</summary>
    private OrtValue[] Inputs(Call call, int batch, int seq, OrtValue[] past, List<OrtValue> owned)
    {
        var values = new OrtValue[_inputNames.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (_pastSlot[i] >= 0) { values[i] = past[_pastSlot[i]]; continue; }
            OrtValue v = Signature.Inputs[i].Role switch
            {
                TeacherInputRole.InputIds => OrtValue.CreateTensorValueFromMemory(call.Ids, [batch, seq]),
                TeacherInputRole.AttentionMask => OrtValue.CreateTensorValueFromMemory(call.Mask, [batch, call.Total]),
                TeacherInputRole.PositionIds => OrtValue.CreateTensorValueFromMemory(call.Pos, [batch, seq]),
                TeacherInputRole.UseCacheBranch => OrtValue.CreateTensorValueFromMemory(new[] { call.Past > 0 }, Signature.UseCacheBranchRank == 0 ? [] : [1]),
                TeacherInputRole.SeqlensK => OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(call.Total - 1, batch).ToArray(), [batch]),
                TeacherInputRole.TotalSequenceLength => OrtValue.CreateTensorValueFromMemory(new[] { call.Total }, Signature.TotalSequenceLengthRank == 0 ? [] : [1]),
                _ => throw new InvalidOperationException($"input {_inputNames[i]}: no value for role {Signature.Inputs[i].Role}."),
            };
            owned.Add(v);
            values[i] = v;
        }
        return values;
    }

    private void CheckLogitsShape(OrtValue logits, int batch, int seq)
    {
        var shape = logits.GetTensorTypeAndShape().Shape;
        if (shape.Length != 3 || shape[0] != batch || shape[1] != seq || shape[2] != VocabSize)
            throw new InvalidDataException($"{ModelPath}: logits came back as [{string.Join(", ", shape)}], expected [{batch}, {seq}, {VocabSize}].");
    }

    /// <summary>
    /// The CUDA path: inputs bound as they are (ONNX Runtime copies the small host ones to the device), the
    /// <c>present.*</c> outputs bound to the device (they become the cache, so the history never leaves it), the
    /// logits bound to <paramref name="logitsLocation"/> (host or device).
    /// </summary>
    private TeacherDeviceLogits RunBound(Call call, int batch, int seq, TeacherKvCache? cache, OrtMemoryInfo logitsLocation)
    {
        OrtValue[]? ownPast = cache == null ? CreateCache(batch).Past : null;
        var owned = new List<OrtValue>();
        IDisposableReadOnlyCollection<OrtValue>? outputs = null;
        try
        {
            using var binding = _session.CreateIoBinding();
            var pastValues = cache?.Past ?? ownPast!;
            var inputs = Inputs(call, batch, seq, pastValues, owned);
            for (int i = 0; i < inputs.Length; i++) binding.BindInput(_inputNames[i], inputs[i]);
            binding.BindOutputToDevice(_outputNames[0], logitsLocation);
            for (int i = 1; i < _outputNames.Length; i++) binding.BindOutputToDevice(_outputNames[i], _cudaMemory!);
            _session.RunWithBinding(_run, binding);
            binding.SynchronizeBoundOutputs();
            outputs = binding.GetOutputValues(); // in the order bound: logits, then present.*
            var logits = outputs[0];
            CheckLogitsShape(logits, batch, seq);
            if (cache != null)
            {
                var present = new OrtValue[2 * NumLayers];
                for (int i = 0; i < present.Length; i++) present[i] = outputs[i + 1];
                cache.Replace(null, present, call.Total); // the cache owns the present values one by one
            }
            else for (int i = 1; i < outputs.Count; i++) outputs[i].Dispose();
            var result = new TeacherDeviceLogits(logits, batch, seq, VocabSize, ReferenceEquals(logitsLocation, _cudaMemory) ? CudaDevice : null);
            outputs = null; // handed out
            return result;
        }
        finally
        {
            outputs?.Dispose();
            foreach (var v in owned) v.Dispose();
            if (ownPast != null) foreach (var v in ownPast) v.Dispose();
        }
    }

    private static long[] Fill(int n, long value)
    {
        var a = new long[n];
        Array.Fill(a, value);
        return a;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _run.Dispose();
        _cudaMemory?.Dispose();
        _session.Dispose();
    }
}

/// <summary>
/// Logits [batch, seq, vocab] fp32 (row-major) left where ONNX Runtime wrote them: in CUDA device memory when made
/// by <see cref="TeacherSession.ForwardOnDevice"/>. Owns that memory until disposed.
/// </summary>
public sealed class TeacherDeviceLogits : IDisposable
{
    private bool _disposed;

    internal TeacherDeviceLogits(OrtValue value, int batch, int seq, int vocab, int? device)
    {
        Value = value; Batch = batch; Seq = seq; Vocab = vocab; DeviceId = device;
    }

    internal OrtValue Value { get; }
    /// <summary>Sequences.</summary>
    public int Batch { get; }
    /// <summary>Positions per sequence.</summary>
    public int Seq { get; }
    /// <summary>Vocabulary size (the last axis).</summary>
    public int Vocab { get; }
    /// <summary>The CUDA device ordinal holding the values; null when they are in host memory.</summary>
    public int? DeviceId { get; }

    /// <summary>The address of the first value (a device address when <see cref="DeviceId"/> is set: do not dereference it on the host).</summary>
    public unsafe IntPtr DataPointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // the span only carries the address and length that ONNX Runtime reports; it is not read here
            return (IntPtr)System.Runtime.CompilerServices.Unsafe.AsPointer(
                ref System.Runtime.InteropServices.MemoryMarshal.GetReference(Value.GetTensorMutableRawData()));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Value.Dispose();
    }
}
