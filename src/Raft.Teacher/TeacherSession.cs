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
/// The frozen teacher: an ONNX causal LM with the <c>text-generation-with-past</c> signature (as written by
/// <see cref="OnnxExporter"/> or Optimum) on ONNX Runtime. Opening checks the model's inputs and outputs; a call
/// returns logits [batch, seq, vocab] and, with a <see cref="TeacherKvCache"/>, extends the cache (prefill, then
/// one-token decode steps). One session must not run two calls at once.
/// </summary>
public sealed class TeacherSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly string[] _inputNames, _outputNames;
    private readonly OrtMemoryInfo? _cudaMemory; // set when the provider is CUDA: outputs are bound there (IOBinding)
    private bool _disposed;

    private TeacherSession(InferenceSession session, string path, string provider, string? fallbackReason,
        int layers, int kvHeads, int headDim, int vocab, Raft.Model.ModelConfig? config, int cudaDevice)
    {
        _session = session; ModelPath = path; Provider = provider; FallbackReason = fallbackReason; Config = config;
        NumLayers = layers; KvHeads = kvHeads; HeadDim = headDim; VocabSize = vocab;
        var inputs = new List<string> { "input_ids", "attention_mask", "position_ids" };
        var outputs = new List<string> { "logits" };
        for (int i = 0; i < layers; i++)
        {
            inputs.Add($"past_key_values.{i}.key"); inputs.Add($"past_key_values.{i}.value");
            outputs.Add($"present.{i}.key"); outputs.Add($"present.{i}.value");
        }
        _inputNames = [.. inputs]; _outputNames = [.. outputs];
        if (provider == "CUDA")
        {
            CudaDevice = cudaDevice;
            _cudaMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, cudaDevice, OrtMemType.Default);
        }
    }

    /// <summary>The model file.</summary>
    public string ModelPath { get; }
    /// <summary>The provider that runs: "CUDA" or "CPU".</summary>
    public string Provider { get; }
    /// <summary>Why CUDA was not used though asked for (Auto or Cuda); null when it runs or was not asked for.</summary>
    public string? FallbackReason { get; }
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

    /// <summary>
    /// Opens <c>model.onnx</c> in <paramref name="directory"/> (or the .onnx file itself). CUDA is tried first for
    /// <see cref="ComputeDevice.Auto"/> and <see cref="ComputeDevice.Cuda"/>; a failure to start it falls back to
    /// the CPU (an error for Cuda without <see cref="TeacherOptions.AllowCpuFallback"/>). One line naming the provider
    /// and, on fallback, the reason goes to <see cref="TeacherOptions.Log"/>. A file that is not an ONNX model, a
    /// missing input or output, a wrong element type, or a vocabulary size other than
    /// <see cref="TeacherOptions.ExpectedVocabSize"/> (or than the vocab_size/num_hidden_layers of a <c>config.json</c>
    /// beside it) raises <see cref="InvalidDataException"/> naming the file.
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
        string path = File.Exists(directory) ? Path.GetFullPath(directory) : Path.GetFullPath(Path.Combine(directory, OnnxExporter.ModelFile));
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: no {OnnxExporter.ModelFile}.", path);
        var log = options.Log ?? (line => Console.Error.WriteLine(line));

        InferenceSession? session = null;
        string provider = "CPU";
        string? reason = null;
        if (options.Provider != ComputeDevice.Cpu)
        {
            try
            {
                session = Create(path, options, cuda: true);
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
            var (layers, kvHeads, headDim, vocab) = Validate(session, path, options.ExpectedVocabSize);
            string configPath = Path.Combine(Path.GetDirectoryName(path)!, Raft.Model.Checkpoint.ConfigFile);
            Raft.Model.ModelConfig? config = null;
            if (File.Exists(configPath))
            {
                config = Raft.Model.ModelConfig.Load(configPath);
                if (config.VocabSize != vocab)
                    throw new InvalidDataException($"{path}: the model's vocabulary size is {vocab} (logits [batch, seq, {vocab}]), {configPath} says vocab_size {config.VocabSize}.");
                if (config.NumHiddenLayers != layers || config.KvHeads != kvHeads || config.HeadDim != headDim)
                    throw new InvalidDataException($"{path}: the model has {layers} layers of past [batch, {kvHeads}, past, {headDim}], {configPath} says {config.NumHiddenLayers} layers, {config.KvHeads} kv heads, head_dim {config.HeadDim}.");
            }
            log(reason is null
                ? $"teacher {path}: running on {provider}" + (options.Provider == ComputeDevice.Cpu ? " (asked for)." : ".")
                : $"teacher {path}: running on CPU; CUDA was asked for ({options.Provider}) but could not be started: {reason}");
            return new TeacherSession(session, path, provider, reason, layers, kvHeads, headDim, vocab, config, options.CudaDevice);
        }
        catch
        {
            session.Dispose();
            throw;
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

    private static (int Layers, int KvHeads, int HeadDim, int Vocab) Validate(InferenceSession s, string path, int? expectedVocab)
    {
        var ins = s.InputMetadata;
        var outs = s.OutputMetadata;
        NodeMetadata Need(IReadOnlyDictionary<string, NodeMetadata> map, string name, string kind, TensorElementType type, int rank)
        {
            if (!map.TryGetValue(name, out var m))
                throw new InvalidDataException($"{path}: the model has no {kind} '{name}' (it has: {string.Join(", ", map.Keys)}).");
            if (!m.IsTensor || m.ElementDataType != type)
                throw new InvalidDataException($"{path}: {kind} '{name}' must be a {type} tensor, is {(m.IsTensor ? m.ElementDataType.ToString() : m.OnnxValueType.ToString())}.");
            if (m.Dimensions.Length != rank)
                throw new InvalidDataException($"{path}: {kind} '{name}' must have rank {rank}, has [{string.Join(", ", m.Dimensions)}].");
            return m;
        }
        Need(ins, "input_ids", "input", TensorElementType.Int64, 2);
        Need(ins, "attention_mask", "input", TensorElementType.Int64, 2);
        Need(ins, "position_ids", "input", TensorElementType.Int64, 2);
        var logits = Need(outs, "logits", "output", TensorElementType.Float, 3);
        int layers = 0;
        while (ins.ContainsKey($"past_key_values.{layers}.key")) layers++;
        if (layers == 0) throw new InvalidDataException($"{path}: the model has no input 'past_key_values.0.key' (not a text-generation-with-past export).");
        int kvHeads = 0, headDim = 0;
        for (int i = 0; i < layers; i++)
            foreach (var (inName, outName) in new[] { ($"past_key_values.{i}.key", $"present.{i}.key"), ($"past_key_values.{i}.value", $"present.{i}.value") })
            {
                var m = Need(ins, inName, "input", TensorElementType.Float, 4);
                Need(outs, outName, "output", TensorElementType.Float, 4);
                if (m.Dimensions[1] <= 0 || m.Dimensions[3] <= 0)
                    throw new InvalidDataException($"{path}: input '{inName}' must have fixed kv_heads and head_dim, has [{string.Join(", ", m.Dimensions)}].");
                if (kvHeads == 0) { kvHeads = m.Dimensions[1]; headDim = m.Dimensions[3]; }
                else if (m.Dimensions[1] != kvHeads || m.Dimensions[3] != headDim)
                    throw new InvalidDataException($"{path}: input '{inName}' has [{string.Join(", ", m.Dimensions)}], other layers have kv_heads {kvHeads}, head_dim {headDim}.");
            }
        int vocab = logits.Dimensions[2];
        if (vocab <= 0) throw new InvalidDataException($"{path}: output 'logits' must have a fixed vocabulary axis, has [{string.Join(", ", logits.Dimensions)}].");
        if (expectedVocab is { } ev && ev != vocab)
            throw new InvalidDataException($"{path}: the model's vocabulary size is {vocab} (logits [batch, seq, {vocab}]), expected {ev}.");
        return (layers, kvHeads, headDim, vocab);
    }

    /// <summary>An empty cache for <paramref name="batch"/> sequences (past length 0).</summary>
    public TeacherKvCache CreateCache(int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        var empty = new OrtValue[2 * NumLayers];
        for (int i = 0; i < empty.Length; i++)
            empty[i] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [batch, KvHeads, 0, HeadDim]);
        return new TeacherKvCache(this, batch, empty);
    }

    /// <summary>
    /// Runs <paramref name="inputIds"/> [batch·seq] (row-major [batch, seq]) after what <paramref name="cache"/> holds
    /// (nothing when null) and returns logits [batch·seq, vocab] (a new array). The cache, when given, is extended by
    /// seq positions: a prefill is a call on an empty cache, a decode step a call with seq = 1.
    /// <paramref name="attentionMask"/> is [batch, past+seq] (all ones when empty); <paramref name="positionIds"/> is
    /// [batch, seq] (past..past+seq−1 when empty). On the CUDA provider the call goes through an IOBinding: the cache
    /// stays on the device and only the logits come back to host memory.
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
    /// copy); the span is valid only during the call.
    /// </summary>
    public void ForwardWith(ReadOnlySpan<long> inputIds, int batch, int seq, LogitsConsumer consume, TeacherKvCache? cache = null,
        ReadOnlySpan<long> attentionMask = default, ReadOnlySpan<long> positionIds = default)
    {
        ArgumentNullException.ThrowIfNull(consume);
        var (ids, mask, pos, total) = Prepare(inputIds, batch, seq, cache, attentionMask, positionIds);
        if (_cudaMemory is not null)
        {
            using var bound = RunBound(ids, mask, pos, batch, seq, total, cache, OrtMemoryInfo.DefaultInstance);
            consume(bound.Value.GetTensorMutableDataAsSpan<float>());
            return;
        }

        OrtValue[]? ownPast = cache == null ? CreateCache(batch).Past : null;
        var inputs = new OrtValue[_inputNames.Length];
        IDisposableReadOnlyCollection<OrtValue>? results = null;
        try
        {
            inputs[0] = OrtValue.CreateTensorValueFromMemory(ids, [batch, seq]);
            inputs[1] = OrtValue.CreateTensorValueFromMemory(mask, [batch, total]);
            inputs[2] = OrtValue.CreateTensorValueFromMemory(pos, [batch, seq]);
            var pastValues = cache?.Past ?? ownPast!;
            results = _session.Run(_run, _inputNames, [.. inputs[..3], .. pastValues], _outputNames);
            var logitsValue = results[0];
            CheckLogitsShape(logitsValue, batch, seq);
            consume(logitsValue.GetTensorMutableDataAsSpan<float>());
            if (cache != null)
            {
                var present = new OrtValue[2 * NumLayers];
                for (int i = 0; i < present.Length; i++) present[i] = results[i + 1];
                cache.Replace(results, present, total);
                results = null; // the cache owns them now
            }
        }
        finally
        {
            results?.Dispose();
            for (int i = 0; i < 3; i++) inputs[i]?.Dispose();
            if (ownPast != null) foreach (var v in ownPast) v.Dispose();
        }
    }

    /// <summary>
    /// As <see cref="Forward"/>, but the logits [batch, seq, vocab] stay in device memory (the <c>logits</c> output
    /// is bound to the CUDA device through an <see cref="OrtIoBinding"/>), for a GPU top-K to read in place. Only on
    /// the CUDA provider (<see cref="UsesDeviceBinding"/>); on the CPU it raises <see cref="InvalidOperationException"/>.
    /// </summary>
    public TeacherDeviceLogits ForwardOnDevice(ReadOnlySpan<long> inputIds, int batch, int seq, TeacherKvCache? cache = null,
        ReadOnlySpan<long> attentionMask = default, ReadOnlySpan<long> positionIds = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_cudaMemory is null)
            throw new InvalidOperationException($"{ModelPath}: ForwardOnDevice needs the CUDA provider; this session runs on {Provider}{(FallbackReason is null ? "" : $" (CUDA could not be started: {FallbackReason})")}. Use Forward.");
        var (ids, mask, pos, total) = Prepare(inputIds, batch, seq, cache, attentionMask, positionIds);
        return RunBound(ids, mask, pos, batch, seq, total, cache, _cudaMemory);
    }

    /// <summary>Checks a call's arguments and builds its input arrays.</summary>
    private (long[] Ids, long[] Mask, long[] Pos, int Total) Prepare(ReadOnlySpan<long> inputIds, int batch, int seq, TeacherKvCache? cache,
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

        if (Config is { } c)
            for (int i = 0; i < pos.Length; i++)
                if (pos[i] < 0 || pos[i] >= c.MaxPositionEmbeddings)
                    throw new ArgumentException($"position [{i / seq}, {i % seq}] = {pos[i]} is outside 0..{c.MaxPositionEmbeddings - 1} (max_position_embeddings).", nameof(positionIds));
        return (ids, mask, pos, total);
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
    private TeacherDeviceLogits RunBound(long[] ids, long[] mask, long[] pos, int batch, int seq, int total, TeacherKvCache? cache,
        OrtMemoryInfo logitsLocation)
    {
        OrtValue[]? ownPast = cache == null ? CreateCache(batch).Past : null;
        var inputs = new OrtValue?[3];
        IDisposableReadOnlyCollection<OrtValue>? outputs = null;
        try
        {
            using var binding = _session.CreateIoBinding();
            inputs[0] = OrtValue.CreateTensorValueFromMemory(ids, [batch, seq]);
            inputs[1] = OrtValue.CreateTensorValueFromMemory(mask, [batch, total]);
            inputs[2] = OrtValue.CreateTensorValueFromMemory(pos, [batch, seq]);
            var pastValues = cache?.Past ?? ownPast!;
            for (int i = 0; i < 3; i++) binding.BindInput(_inputNames[i], inputs[i]!);
            for (int i = 0; i < pastValues.Length; i++) binding.BindInput(_inputNames[i + 3], pastValues[i]);
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
                cache.Replace(null, present, total); // the cache owns the present values one by one
            }
            else for (int i = 1; i < outputs.Count; i++) outputs[i].Dispose();
            var result = new TeacherDeviceLogits(logits, batch, seq, VocabSize, ReferenceEquals(logitsLocation, _cudaMemory) ? CudaDevice : null);
            outputs = null; // handed out
            return result;
        }
        finally
        {
            outputs?.Dispose();
            foreach (var v in inputs) v?.Dispose();
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
