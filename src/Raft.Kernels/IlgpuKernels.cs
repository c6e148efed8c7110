using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Raft.Kernels.Ilgpu;

namespace Raft.Kernels;

/// <summary>
/// The ILGPU implementation of <see cref="ILossKernels"/>: the code that runs on CUDA (and, for tests, on
/// ILGPU's CPU accelerator). Each row is processed by one group of threads (see <see cref="GroupSize"/>):
/// an online max / log-sum-exp sweep over the row with group-wide shared-memory reductions, then a second
/// sweep that writes the gradient. The O(vocab) sweeps are fp32 with a stable max subtraction; the terms of
/// the K teacher entries (which subtract logarithms of similar size) are fp64; per-row losses are summed in
/// double on the device.
/// <para>
/// Two forms of every op: the <see cref="ILossKernels"/> span overloads validate on the host with
/// <see cref="LossArguments"/> (before anything is written), copy host → device, run and copy back; the
/// <see cref="ArrayView{T}"/> overloads work on device-resident tensors, check shapes and scalars on the
/// host and the contents of index, probability, weight and target tensors on the device (an invalid value
/// makes the row kernels no-ops, so nothing is written; the teacher entries of rows of weight 0 are neither
/// checked nor read), and bring back only a small summary. <see cref="IDeviceLossKernels"/> is that form. In both forms
/// a NaN or infinite logit in a row that is read raises <see cref="NonFiniteLogitException"/> naming the first
/// such row and its first such column (the kernels write a per-row status that the host checks afterwards);
/// the span overloads then leave the caller's buffers untouched, while on device the other rows' gradients
/// may have been written.
/// </para>
/// <para>
/// Tested on ILGPU's CPU accelerator only so far. On CUDA, ILGPU 1.5's PTX backend takes exp, log and pow
/// (fp32 and fp64) from CUDA's libdevice, so the caller's context must be built with
/// <c>Context.Builder.LibDevice()</c> (it needs the CUDA toolkit's libdevice and NVVM).
/// </para>
/// <para>
/// An instance keeps reusable device buffers and is not meant to be called from several threads at once
/// (calls are serialised by a lock). Kernels are compiled once per accelerator and cached.
/// </para>
/// </summary>
public sealed class IlgpuKernels : IDeviceLossKernels, IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly Context? _ownedContext;
    private readonly KernelSet _kernels;
    private readonly object _lock = new();

    private readonly DeviceScratch<float> _logits, _gradient, _probs, _weights, _rowLoss, _distillScratch;
    private readonly DeviceScratch<int> _indices, _rowStatus;
    private readonly DeviceScratch<ulong> _topKScratch;
    private readonly DeviceScratch<DeviceSummary> _summary;
    private bool _disposed;

    /// <summary>Creates the kernels on <paramref name="accelerator"/>, which stays owned by the caller.</summary>
    public IlgpuKernels(Accelerator accelerator) : this(accelerator, null) { }

    private IlgpuKernels(Accelerator accelerator, Context? ownedContext)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _ownedContext = ownedContext;
        _kernels = KernelSet.For(accelerator);
        _logits = new(accelerator); _gradient = new(accelerator); _probs = new(accelerator);
        _weights = new(accelerator); _rowLoss = new(accelerator); _distillScratch = new(accelerator);
        _indices = new(accelerator); _rowStatus = new(accelerator);
        _topKScratch = new(accelerator);
        _summary = new(accelerator);
    }

    /// <summary>
    /// Creates the kernels on a new ILGPU context with its CPU accelerator, both owned and disposed by the
    /// returned instance. The CPU accelerator simulates GPU threads with OS threads (a group's barrier waits
    /// for all of them), so it is configured small: one multiprocessor, groups of 8 threads (2 warps of 4),
    /// enough to exercise every group-wide reduction path without oversubscribing a small machine.
    /// </summary>
    public static IlgpuKernels CreateCpu()
    {
        var device = new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 2, numMultiprocessors: 1);
        var context = Context.Create(builder => builder.CPU(device).Optimize(OptimizationLevel.O1));
        try
        {
            return new IlgpuKernels(context.CreateCPUAccelerator(0), context);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Creates the kernels on an accelerator and its context, both then owned (disposed) by the instance.</summary>
    internal static IlgpuKernels Own(Accelerator accelerator, Context context)
    {
        try
        {
            return new IlgpuKernels(accelerator, context);
        }
        catch
        {
            accelerator.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public Accelerator Accelerator => _accelerator;

    /// <summary>Threads per group (one group per row): the largest power of two ≤ min(256, the accelerator's limit).</summary>
    public int GroupSize => _kernels.GroupSize;

    /// <inheritdoc />
    public string Name => "ilgpu-" + _accelerator.AcceleratorType.ToString().ToLowerInvariant();

    // ---------------------------------------------------------------- top-K temperature softmax

    /// <inheritdoc />
    public void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        LossArguments.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs);
        lock (_lock)
        {
            ThrowIfDisposed();
            var logits = _logits.Upload(teacherLogits);
            var idx = _indices.Get((long)rows * k);
            var p = _probs.Get((long)rows * k);
            RunTopK(logits, rows, vocab, k, temperature, idx, p);
            if (idx.Length > 0)
            {
                idx.CopyToCPU(indices);
                p.CopyToCPU(probs);
            }
        }
    }

    /// <summary>
    /// Device-resident top-K temperature softmax (same results as the span overload).
    /// Shapes: <paramref name="teacherLogits"/> [rows, vocab] → <paramref name="indices"/> and
    /// <paramref name="probs"/> [rows, k]. Synchronises once to check for non-finite logits.
    /// </summary>
    /// <exception cref="ArgumentException">A shape, <paramref name="k"/> or <paramref name="temperature"/> is invalid.</exception>
    /// <exception cref="NonFiniteLogitException">A teacher row holds a NaN or infinite logit.</exception>
    public void TopKSoftmax(ArrayView<float> teacherLogits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs)
    {
        CheckTopKShapes(teacherLogits, rows, vocab, k, temperature, indices, probs);
        lock (_lock)
        {
            ThrowIfDisposed();
            RunTopK(teacherLogits, rows, vocab, k, temperature, indices, probs);
        }
    }

    /// <summary>The host checks of the device-resident top-K (shapes and scalars), shared with the CUDA C kernels (Raft.Kernels.Cuda).</summary>
    internal static void CheckTopKShapes(ArrayView<float> teacherLogits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs)
    {
        Guard.Shape(rows, vocab);
        DeviceLength(teacherLogits.Length, (long)rows * vocab, nameof(teacherLogits), "[rows, vocab]");
        Guard.TopK(k, vocab);
        Guard.Temperature(temperature);
        DeviceLength(indices.Length, (long)rows * k, nameof(indices), "[rows, k]");
        DeviceLength(probs.Length, (long)rows * k, nameof(probs), "[rows, k]");
    }

    private void RunTopK(ArrayView<float> logits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs)
    {
        var status = _rowStatus.Get(rows);
        var scratch = _topKScratch.Get((long)rows * k);
        var summary = _summary.Get(1);
        var p = new TopKParams { Rows = rows, Vocab = vocab, K = k, InvTau = 1f / temperature };
        _kernels.TopK(logits, indices, probs, scratch, status, p);
        _kernels.Finish(ArrayView<float>.Empty, ArrayView<float>.Empty, status, summary, rows);
        var s = ReadSummary(summary);
        if (s.BadRow >= 0) ThrowNonFinite("teacherLogits", logits, vocab, s);
    }

    // ---------------------------------------------------------------- distillation

    /// <inheritdoc />
    public LossResult Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer = 0f)
    {
        LossArguments.Distill(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient, normalizer);
        bool inPlace = !gradient.IsEmpty && studentLogits.Overlaps(gradient);
        lock (_lock)
        {
            ThrowIfDisposed();
            var student = _logits.Upload(studentLogits);
            var idx = _indices.Upload(teacherIndices);
            var probs = _probs.Upload(teacherProbs);
            var weights = rowWeights.IsEmpty ? ArrayView<float>.Empty : _weights.Upload(rowWeights);
            var grad = gradient.IsEmpty ? ArrayView<float>.Empty : inPlace ? student : _gradient.Get(gradient.Length);
            var result = RunDistill(student, rows, vocab, idx, probs, config, weights, grad, ArrayView<float>.Empty,
                normalizer, validate: false);
            if (grad.Length > 0) grad.CopyToCPU(gradient);
            return result;
        }
    }

    /// <summary>
    /// Device-resident fused distillation loss and gradient (same math and results as the span overload).
    /// Shapes: <paramref name="studentLogits"/> [rows, vocab]; <paramref name="teacherIndices"/> and
    /// <paramref name="teacherProbs"/> [rows, k]; <paramref name="rowWeights"/> [rows] or empty (all 1);
    /// <paramref name="gradient"/> [rows, vocab], empty (loss only) or the very student view (in place);
    /// <paramref name="rowLosses"/> [rows] or empty: receives each row's unweighted τ²·D_r (0 for rows of
    /// weight 0). Synchronises once, to bring back the summary returned.
    /// </summary>
    /// <exception cref="ArgumentException">A shape, a config field, a teacher index or probability, a weight or the
    /// normalizer is invalid (contents are checked on the device before anything is written).</exception>
    /// <exception cref="NonFiniteLogitException">A student row that is read holds a NaN or infinite logit.</exception>
    public LossResult Distill(ArrayView<float> studentLogits, int rows, int vocab,
        ArrayView<int> teacherIndices, ArrayView<float> teacherProbs, DistillSettings config,
        ArrayView<float> rowWeights, ArrayView<float> gradient, ArrayView<float> rowLosses, float normalizer = 0f)
    {
        CheckDistillShapes(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient, rowLosses, normalizer);
        lock (_lock)
        {
            ThrowIfDisposed();
            return RunDistill(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient,
                rowLosses, normalizer, validate: true);
        }
    }

    /// <summary>The host checks of the device-resident distillation (shapes and scalars), shared with the CUDA C kernels (Raft.Kernels.Cuda).</summary>
    internal static void CheckDistillShapes(ArrayView<float> studentLogits, int rows, int vocab,
        ArrayView<int> teacherIndices, ArrayView<float> teacherProbs, DistillSettings config,
        ArrayView<float> rowWeights, ArrayView<float> gradient, ArrayView<float> rowLosses, float normalizer)
    {
        Guard.Shape(rows, vocab);
        DeviceLength(studentLogits.Length, (long)rows * vocab, nameof(studentLogits), "[rows, vocab]");
        config.Validate(vocab);
        DeviceLength(teacherIndices.Length, (long)rows * config.TopK, nameof(teacherIndices), "[rows, k]");
        DeviceLength(teacherProbs.Length, (long)rows * config.TopK, nameof(teacherProbs), "[rows, k]");
        if (rowWeights.Length != 0) DeviceLength(rowWeights.Length, rows, nameof(rowWeights), "[rows]");
        DeviceGradient(studentLogits, gradient, nameof(studentLogits));
        if (rowLosses.Length != 0) DeviceLength(rowLosses.Length, rows, nameof(rowLosses), "[rows]");
        Guard.Normalizer(normalizer);
        if ((long)rows * config.TopK > int.MaxValue)
            Guard.Throw($"rows·k must be at most {int.MaxValue}, got {(long)rows * config.TopK}.", "teacherIndices");
    }

    /// <summary>
    /// The device-side checks of a device-resident distillation without the loss itself, for kernels that compute it
    /// elsewhere on this accelerator (the CUDA C kernels of Raft.Kernels.Cuda): the teacher indices (range, then
    /// distinctness) and probabilities of every row of non-zero weight and the weights, in the order and with the
    /// messages of <see cref="Distill(ArrayView{float}, int, int, ArrayView{int}, ArrayView{float}, DistillSettings, ArrayView{float}, ArrayView{float}, ArrayView{float}, float)"/>;
    /// then Σ w and the normaliser N used (the caller's when &gt; 0). Call <see cref="CheckDistillShapes"/> first.
    /// Synchronises once.
    /// </summary>
    /// <exception cref="ArgumentException">A teacher entry of a weighted row, or a weight, is invalid.</exception>
    internal (double WeightSum, double Normalizer) CheckDistillContents(int rows, int vocab, ArrayView<int> idx,
        ArrayView<float> probs, DistillSettings config, ArrayView<float> weights, float normalizer)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            var status = _rowStatus.Get(rows);
            var summary = _summary.Get(1);
            var p = DistillParamsOf(rows, vocab, config, normalizer, validate: true);
            bool checkDuplicates = config.TopK > 1;
            if (checkDuplicates) _kernels.DistillFindDuplicates(weights, idx, status, p);
            _kernels.DistillPrepare(weights, idx, probs, checkDuplicates ? status : ArrayView<int>.Empty, summary, p);
            var s = ReadSummary(summary);
            ThrowOnDistillArgument(s, idx, probs, weights, vocab, config.TopK);
            return (s.WeightSum, s.Normalizer);
        }
    }

    private static DistillParams DistillParamsOf(int rows, int vocab, DistillSettings config, float normalizer, bool validate) => new()
    {
        Rows = rows, Vocab = vocab, K = config.TopK, Kind = (int)config.EffectiveKind,
        Tau = config.Temperature, InvTau = 1f / config.Temperature, Beta = config.Beta,
        Validate = validate ? 1 : 0, Normalizer = normalizer,
    };

    private LossResult RunDistill(ArrayView<float> student, int rows, int vocab, ArrayView<int> idx, ArrayView<float> probs,
        DistillSettings config, ArrayView<float> weights, ArrayView<float> gradient, ArrayView<float> rowLosses,
        float normalizer, bool validate)
    {
        int k = config.TopK;
        if ((long)rows * k > int.MaxValue)
            Guard.Throw($"rows·k must be at most {int.MaxValue}, got {(long)rows * k}.", "teacherIndices");
        var rowLoss = rowLosses.Length > 0 ? rowLosses : _rowLoss.Get(rows);
        var status = _rowStatus.Get(rows);
        var scratch = gradient.Length > 0 ? _distillScratch.Get((long)rows * k) : ArrayView<float>.Empty;
        var summary = _summary.Get(1);
        var p = DistillParamsOf(rows, vocab, config, normalizer, validate);
        bool checkDuplicates = validate && k > 1;
        if (checkDuplicates) _kernels.DistillFindDuplicates(weights, idx, status, p);
        _kernels.DistillPrepare(weights, idx, probs, checkDuplicates ? status : ArrayView<int>.Empty, summary, p);
        _kernels.DistillRows(student, gradient, idx, probs, weights, rowLoss, status, scratch, summary, p);
        _kernels.Finish(rowLoss, weights, status, summary, rows);
        var s = ReadSummary(summary);
        ThrowOnDistillArgument(s, idx, probs, weights, vocab, k);
        if (s.BadRow >= 0) ThrowNonFinite("studentLogits", student, vocab, s);
        double n = s.Normalizer;
        return new LossResult(n == 0 ? 0 : s.LossSum / n, s.LossSum, s.WeightSum, n);
    }

    /// <summary>Throws the <see cref="ArgumentException"/> of a distillation input that the device found invalid, if any.</summary>
    private void ThrowOnDistillArgument(DeviceSummary s, ArrayView<int> idx, ArrayView<float> probs, ArrayView<float> weights, int vocab, int k)
    {
        switch (s.ArgError)
        {
            case ArgErrors.TeacherIndices:
                Guard.Throw($"teacherIndices[{s.ArgIndex / k}, {s.ArgIndex % k}] must be in 0..{vocab - 1}, got {ReadOne(idx, s.ArgIndex)}.", "teacherIndices");
                break;
            case ArgErrors.TeacherProbs:
                Guard.Throw($"teacherProbs[{s.ArgIndex / k}, {s.ArgIndex % k}] must be a probability in [0, 1], got {ReadOne(probs, s.ArgIndex)}.", "teacherProbs");
                break;
            case ArgErrors.DuplicateTeacherIndex:
                Guard.Throw($"teacherIndices row {s.ArgIndex} holds index {s.ArgValue} twice; the K indices of a row must be distinct.", "teacherIndices");
                break;
            case ArgErrors.RowWeights:
                Guard.Throw($"rowWeights[{s.ArgIndex}] must be finite and ≥ 0, got {ReadOne(weights, s.ArgIndex)}.", "rowWeights");
                break;
        }
    }

    // ---------------------------------------------------------------- cross-entropy

    /// <inheritdoc />
    public LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f)
    {
        LossArguments.CrossEntropy(logits, rows, vocab, targets, gradient, ignoreIndex, labelSmoothing, normalizer);
        bool inPlace = !gradient.IsEmpty && logits.Overlaps(gradient);
        lock (_lock)
        {
            ThrowIfDisposed();
            var x = _logits.Upload(logits);
            var t = _indices.Upload(targets);
            var grad = gradient.IsEmpty ? ArrayView<float>.Empty : inPlace ? x : _gradient.Get(gradient.Length);
            var result = RunCrossEntropy(x, rows, vocab, t, grad, ArrayView<float>.Empty, ignoreIndex, labelSmoothing,
                normalizer, validate: false);
            if (grad.Length > 0) grad.CopyToCPU(gradient);
            return result;
        }
    }

    /// <summary>
    /// Device-resident cross-entropy with label smoothing (same math and results as the span overload).
    /// Shapes: <paramref name="logits"/> [rows, vocab]; <paramref name="targets"/> [rows];
    /// <paramref name="gradient"/> [rows, vocab], empty (loss only) or the logits view itself (in place);
    /// <paramref name="rowLosses"/> [rows] or empty: receives each row's loss L_r (0 for ignored rows).
    /// Synchronises once, to bring back the summary returned.
    /// </summary>
    /// <exception cref="ArgumentException">A shape, a target, <paramref name="labelSmoothing"/> or the normalizer is
    /// invalid (targets are checked on the device before anything is written).</exception>
    /// <exception cref="NonFiniteLogitException">A row that is read holds a NaN or infinite logit.</exception>
    public LossResult CrossEntropy(ArrayView<float> logits, int rows, int vocab, ArrayView<int> targets,
        ArrayView<float> gradient, ArrayView<float> rowLosses, int ignoreIndex = -100, float labelSmoothing = 0f,
        float normalizer = 0f)
    {
        Guard.Shape(rows, vocab);
        DeviceLength(logits.Length, (long)rows * vocab, nameof(logits), "[rows, vocab]");
        DeviceLength(targets.Length, rows, nameof(targets), "[rows]");
        if (!(labelSmoothing >= 0f && labelSmoothing <= 1f))
            Guard.Throw($"labelSmoothing must be in [0, 1], got {labelSmoothing}.", nameof(labelSmoothing));
        DeviceGradient(logits, gradient, nameof(logits));
        if (rowLosses.Length != 0) DeviceLength(rowLosses.Length, rows, nameof(rowLosses), "[rows]");
        Guard.Normalizer(normalizer);
        lock (_lock)
        {
            ThrowIfDisposed();
            return RunCrossEntropy(logits, rows, vocab, targets, gradient, rowLosses, ignoreIndex, labelSmoothing,
                normalizer, validate: true);
        }
    }

    private LossResult RunCrossEntropy(ArrayView<float> logits, int rows, int vocab, ArrayView<int> targets,
        ArrayView<float> gradient, ArrayView<float> rowLosses, int ignoreIndex, float labelSmoothing, float normalizer,
        bool validate)
    {
        var rowLoss = rowLosses.Length > 0 ? rowLosses : _rowLoss.Get(rows);
        var status = _rowStatus.Get(rows);
        var summary = _summary.Get(1);
        var p = new CrossEntropyParams
        {
            Rows = rows, Vocab = vocab, IgnoreIndex = ignoreIndex, LabelSmoothing = labelSmoothing,
            Validate = validate ? 1 : 0, Normalizer = normalizer,
        };
        _kernels.CrossEntropyPrepare(targets, summary, p);
        _kernels.CrossEntropyRows(logits, gradient, targets, rowLoss, status, summary, p);
        _kernels.Finish(rowLoss, ArrayView<float>.Empty, status, summary, rows);
        var s = ReadSummary(summary);
        if (s.ArgError == ArgErrors.Targets)
            Guard.Throw($"targets[{s.ArgIndex}] must be in 0..{vocab - 1} or the ignore index {ignoreIndex}, got {ReadOne(targets, s.ArgIndex)}.", "targets");
        if (s.BadRow >= 0) ThrowNonFinite("logits", logits, vocab, s);
        double n = s.Normalizer;
        return new LossResult(n == 0 ? 0 : s.LossSum / n, s.LossSum, s.WeightSum, n);
    }

    // ---------------------------------------------------------------- EMA balancer

    /// <summary>
    /// Enqueues one <see cref="EmaBalancer"/> step on device-resident state, on the accelerator's default
    /// stream and without synchronising: <see cref="EmaBalancer.Update"/> with <paramref name="losses"/>, then
    /// <see cref="EmaBalancer.Weights"/> into <paramref name="weights"/>, in double with the same operations in
    /// the same order as the class (see its comment for the formula). Shapes: <paramref name="ratio"/> (r_k),
    /// <paramref name="ema"/> (m_k, updated), <paramref name="losses"/> and <paramref name="weights"/> [n];
    /// <paramref name="steps"/> (t, updated) and <paramref name="status"/> [1]. A non-finite loss leaves the
    /// state unchanged, writes the weights of the unchanged state and sets status[0] = 1 + its index (0 when
    /// all were finite); the caller checks it when it next synchronises. The state's values are not checked
    /// here (<see cref="RunEmaBalancerStep"/> checks them).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="decay"/> is outside [0, 1) or a length is wrong.</exception>
    public static void EmaBalancerStep(Accelerator accelerator, double decay, ArrayView<double> ratio,
        ArrayView<double> ema, ArrayView<long> steps, ArrayView<double> losses, ArrayView<double> weights,
        ArrayView<int> status)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (!(decay >= 0 && decay < 1)) Guard.Throw($"decay must be in [0, 1), got {decay}.", nameof(decay));
        long n = ratio.Length;
        if (n < 1) Guard.Throw("ratio must name at least one term.", nameof(ratio));
        DeviceLength(ema.Length, n, nameof(ema), "[n]");
        DeviceLength(losses.Length, n, nameof(losses), "[n]");
        DeviceLength(weights.Length, n, nameof(weights), "[n]");
        DeviceLength(steps.Length, 1, nameof(steps), "[1]");
        DeviceLength(status.Length, 1, nameof(status), "[1]");
        KernelSet.For(accelerator).EmaStep(ratio, ema, steps, losses, weights, status, decay);
    }

    /// <summary>
    /// Runs <see cref="EmaBalancerStep"/> from host state: the same as <c>new EmaBalancer(state).Step(losses)</c>
    /// (and the same checks, with the same exceptions), computed on <paramref name="accelerator"/>. Returns the
    /// weights and the updated state.
    /// </summary>
    /// <exception cref="ArgumentException">The state is invalid, or <paramref name="losses"/> has the wrong length or a
    /// non-finite value (the state is then not updated).</exception>
    public static (double[] Weights, EmaBalancerState State) RunEmaBalancerStep(Accelerator accelerator,
        EmaBalancerState state, ReadOnlySpan<double> losses)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        int n = new EmaBalancer(state).Terms; // validates the state
        if (losses.Length != n) Guard.Throw($"losses must have {n} values (one per term), got {losses.Length}.", nameof(losses));
        for (int k = 0; k < losses.Length; k++)
            if (!double.IsFinite(losses[k])) Guard.Throw($"losses[{k}] must be finite, got {losses[k]}.", nameof(losses));

        using var ratio = accelerator.Allocate1D(state.TargetRatio);
        using var ema = accelerator.Allocate1D(state.Ema);
        using var steps = accelerator.Allocate1D(new[] { state.Steps });
        using var loss = accelerator.Allocate1D(losses.ToArray());
        using var weights = accelerator.Allocate1D<double>(n);
        using var status = accelerator.Allocate1D<int>(1);
        EmaBalancerStep(accelerator, state.Decay, ratio.View, ema.View, steps.View, loss.View, weights.View, status.View);
        accelerator.DefaultStream.Synchronize();
        var w = weights.GetAsArray1D();
        var updated = new EmaBalancerState(state.Decay, (double[])state.TargetRatio.Clone(), ema.GetAsArray1D(),
            steps.GetAsArray1D()[0]);
        return (w, updated);
    }

    // ---------------------------------------------------------------- helpers

    private DeviceSummary ReadSummary(ArrayView<DeviceSummary> summary)
    {
        _accelerator.DefaultStream.Synchronize();
        var s = new DeviceSummary[1];
        summary.CopyToCPU(s);
        return s[0];
    }

    private T ReadOne<T>(ArrayView<T> view, long index) where T : unmanaged
    {
        var one = new T[1];
        view.SubView(index, 1).CopyToCPU(one);
        return one[0];
    }

    private void ThrowNonFinite(string tensor, ArrayView<float> data, int vocab, DeviceSummary s)
    {
        float value = float.NaN;
        if (s.BadColumn >= 0) value = ReadOne(data, (long)s.BadRow * vocab + s.BadColumn);
        Guard.ThrowNonFinite(tensor, s.BadRow, s.BadColumn, value);
    }

    internal static void DeviceLength(long actual, long expected, string name, string shape)
    {
        if (actual != expected)
            Guard.Throw($"{name} must have {expected} elements ({shape}), got {actual}.", name);
    }

    /// <summary>The device gradient: empty, the input view itself, or a disjoint view of the same length.</summary>
    internal static void DeviceGradient(ArrayView<float> input, ArrayView<float> gradient, string inputName)
    {
        if (gradient.Length == 0) return;
        DeviceLength(gradient.Length, input.Length, "gradient", $"same shape as {inputName}");
        if (!ReferenceEquals(((IArrayView)gradient).Buffer, ((IArrayView)input).Buffer)) return;
        long offset = ((long)gradient.LoadEffectiveAddressAsPtr() - (long)input.LoadEffectiveAddressAsPtr()) / sizeof(float);
        if (offset != 0 && Math.Abs(offset) < input.Length)
            Guard.Throw($"gradient overlaps {inputName} at an offset of {offset} elements; pass the same view (in place) or a disjoint one.", "gradient");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Frees the device buffers, and the accelerator and context when this instance created them (<see cref="CreateCpu"/>).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _logits.Dispose(); _gradient.Dispose(); _probs.Dispose(); _weights.Dispose(); _rowLoss.Dispose();
            _distillScratch.Dispose(); _indices.Dispose(); _rowStatus.Dispose(); _topKScratch.Dispose(); _summary.Dispose();
            if (_ownedContext is not null)
            {
                _accelerator.Dispose();
                _ownedContext.Dispose();
            }
        }
    }
}
