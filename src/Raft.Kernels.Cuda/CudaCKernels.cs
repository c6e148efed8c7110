using System.Diagnostics.CodeAnalysis;
using ILGPU;
using ILGPU.Runtime;
using Raft.Cuda;
using CudaAccelerator = ILGPU.Runtime.Cuda.CudaAccelerator;

namespace Raft.Kernels.Cuda;

/// <summary>
/// The hand-written CUDA C loss kernels (<see cref="CudaLossKernels"/>, kernels/*.cu compiled by NVRTC) behind
/// <see cref="ILossKernels"/> and <see cref="IDeviceLossKernels"/>, launched in the context of ILGPU's CUDA
/// accelerator (<see cref="CudaDevice.FromIlgpu"/>), so that ILGPU code (the GPU student, <see cref="IlgpuKernels"/>)
/// shares the accelerator and its buffers with them.
/// <para>
/// Host spans: each call uploads its inputs, launches, synchronizes and downloads the results (so it pays the PCIe
/// copies that the device-resident paths avoid); cross-entropy has no CUDA C kernel and runs on
/// <see cref="CpuKernels"/>. Arguments are checked on the host with the same rules and messages as every
/// implementation (<see cref="LossArguments"/>).
/// </para>
/// <para>
/// Device views (<see cref="IDeviceLossKernels"/>, views on <see cref="Accelerator"/>): shapes and scalars are checked
/// on the host, the teacher entries and weights on the device by <see cref="IlgpuKernels"/>' validation kernels
/// (same rules and messages) before the CUDA C kernel writes anything; cross-entropy runs on an
/// <see cref="IlgpuKernels"/> over the same accelerator.
/// </para>
/// <para>
/// In both forms rows of weight 0 are neither read nor validated and get a zero gradient, and a NaN or infinite logit
/// in a row that is read raises <see cref="NonFiniteLogitException"/> with its row and column. Calls are serialized.
/// </para>
/// </summary>
public sealed class CudaCKernels : IDeviceLossKernels, IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private readonly Context? _ownedContext; // with the accelerator, when TryCreate opened both
    private readonly CudaDevice _device;
    private readonly CudaLossKernels _kernels;
    private readonly IlgpuKernels _ilgpu;
    private readonly CpuKernels _cpu;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>
    /// Loads the kernels (PTX from <paramref name="cache"/>, by default a <see cref="PtxCache"/> in its default
    /// directory) on <paramref name="accelerator"/>, which stays owned by the caller and must outlive this instance.
    /// </summary>
    /// <param name="accelerator">ILGPU's CUDA accelerator to launch on.</param>
    /// <param name="cpuThreads">Threads of the CPU cross-entropy on host spans; 0 = all cores.</param>
    /// <param name="cache">Where compiled PTX is kept.</param>
    /// <exception cref="NvrtcException">A kernel failed to compile.</exception>
    /// <exception cref="CudaException">The driver rejected the PTX or a call failed.</exception>
    /// <exception cref="NotSupportedException">The device is older than compute capability 7.0.</exception>
    public CudaCKernels(CudaAccelerator accelerator, int cpuThreads = 0, PtxCache? cache = null)
        : this(accelerator, null, cpuThreads, cache) { }

    private CudaCKernels(CudaAccelerator accelerator, Context? ownedContext, int cpuThreads, PtxCache? cache)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _cpu = new CpuKernels(cpuThreads);
        _accelerator = accelerator;
        _device = CudaDevice.FromIlgpu(accelerator);
        try
        {
            _kernels = CudaLossKernels.Load(_device, cache);
            try
            {
                _ilgpu = new IlgpuKernels(accelerator);
            }
            catch
            {
                _kernels.Dispose();
                throw;
            }
        }
        catch
        {
            _device.Dispose();
            throw;
        }
        _ownedContext = ownedContext;
    }

    /// <summary>
    /// Opens ILGPU's CUDA accelerator on the first CUDA device (<see cref="KernelBackends.TryCreateCudaAccelerator"/>,
    /// owned and disposed by the returned instance) and loads the kernels on it (PTX cached on disk), or says why not:
    /// no CUDA device, no NVRTC, ILGPU cannot use the device, or the kernels cannot be built or loaded.
    /// </summary>
    /// <param name="cpuThreads">Threads of the CPU cross-entropy on host spans; 0 = all cores.</param>
    /// <param name="kernels">The kernels, when true.</param>
    /// <param name="reason">Why not, when false.</param>
    public static bool TryCreate(int cpuThreads, [NotNullWhen(true)] out CudaCKernels? kernels, out string reason)
    {
        kernels = null;
        if (!CudaDevice.IsAvailable)
        {
            reason = "no CUDA device: " + CudaDevice.UnavailableReason;
            return false;
        }
        if (!NvrtcCompiler.IsAvailable)
        {
            reason = "a CUDA device is present but NVRTC is not: " + NvrtcCompiler.UnavailableReason;
            return false;
        }
        if (!KernelBackends.TryCreateCudaAccelerator(OptimizationLevel.O1, out var context, out var accelerator, out string name, out reason))
            return false;
        try
        {
            kernels = new CudaCKernels((CudaAccelerator)accelerator!, context, cpuThreads, cache: null);
            return true;
        }
        catch (Exception e) when (e is CudaException or NvrtcException or NotSupportedException or IOException)
        {
            accelerator!.Dispose();
            context!.Dispose();
            reason = $"{name}: the CUDA C kernels cannot be loaded ({e.GetType().Name}: {e.Message})";
            return false;
        }
        catch
        {
            accelerator!.Dispose();
            context!.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public string Name => "cuda-c";

    /// <summary>One line for the log: the device, the architecture and where cross-entropy on host spans runs.</summary>
    public string Description => $"cuda-c: {_device} (kernels/*.cu for {_kernels.Architecture}; cross-entropy on {_cpu.Name})";

    /// <summary>ILGPU's CUDA accelerator the kernels launch on (its context, default stream and buffers).</summary>
    public Accelerator Accelerator => _accelerator;

    /// <summary>
    /// The kernel's divergence for <paramref name="settings"/> (its <see cref="DistillSettings.EffectiveKind"/>: JSD at
    /// β = 0 or 1 is forward or reverse KL): the one mapping of <see cref="DistillLossKind"/> onto <see cref="KdDivergence"/>.
    /// </summary>
    public static KdDivergence Divergence(DistillSettings settings) => settings.EffectiveKind switch
    {
        DistillLossKind.ForwardKL => KdDivergence.ForwardKL,
        DistillLossKind.ReverseKL => KdDivergence.ReverseKL,
        _ => KdDivergence.Jsd,
    };

    // ---------------------------------------------------------------- host spans

    /// <inheritdoc />
    public void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        LossArguments.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs);
        if (rows == 0) return;
        lock (_lock)
        {
            ThrowIfDisposed();
            using var logits = _device.Upload(teacherLogits);
            using var idx = _device.Allocate<int>(indices.Length);
            using var p = _device.Allocate<float>(probs.Length);
            using var status = _device.Allocate<int>(rows);
            status.Clear();
            _kernels.TopKSoftmax(logits.Pointer, rows, vocab, k, temperature, idx.Pointer, p.Pointer, status.Pointer);
            _device.Synchronize();
            int bad = FirstFlagged(status.ToArray());
            if (bad >= 0) ThrowNonFinite("teacherLogits", bad, teacherLogits.Slice(bad * vocab, vocab));
            idx.CopyTo(indices);
            p.CopyTo(probs);
        }
    }

    /// <inheritdoc />
    public LossResult Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer = 0f)
    {
        LossArguments.Distill(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient, normalizer);
        var (weightSum, n) = LossArguments.DistillNormalizer(rowWeights, rows, normalizer);
        if (rows == 0) return new LossResult(0, 0, 0, n);
        bool inPlace = !gradient.IsEmpty && studentLogits.Overlaps(gradient);
        lock (_lock)
        {
            ThrowIfDisposed();
            using var student = _device.Upload(studentLogits);
            using var grad = _device.Allocate<float>(gradient.IsEmpty || inPlace ? 0 : gradient.Length);
            using var idx = _device.Upload(teacherIndices);
            using var p = _device.Upload(teacherProbs);
            using var weights = _device.Upload(rowWeights);
            using var rowLoss = _device.Allocate<float>(rows);
            using var status = _device.Allocate<int>(rows);
            status.Clear();
            var gradPointer = gradient.IsEmpty ? DevicePointer.Null : inPlace ? student.Pointer : grad.Pointer;
            _kernels.Distill(student.Pointer, gradPointer, rows, vocab, idx.Pointer, p.Pointer, config.TopK,
                rowWeights.IsEmpty ? DevicePointer.Null : weights.Pointer, (float)n, config.Temperature, Divergence(config), config.Beta,
                rowLoss.Pointer, status.Pointer);
            _device.Synchronize();
            int bad = FirstFlagged(status.ToArray());
            if (bad >= 0) ThrowNonFinite("studentLogits", bad, studentLogits.Slice(bad * vocab, vocab));
            double sum = WeightedSum(rowLoss.ToArray(), rowWeights);
            if (!gradient.IsEmpty) (inPlace ? student : grad).CopyTo(gradient);
            return new LossResult(n == 0 ? 0 : sum / n, sum, weightSum, n);
        }
    }

    /// <inheritdoc />
    public LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f)
    {
        ThrowIfDisposed();
        return _cpu.CrossEntropy(logits, rows, vocab, targets, gradient, ignoreIndex, labelSmoothing, normalizer);
    }

    // ---------------------------------------------------------------- device views

    /// <inheritdoc />
    public void TopKSoftmax(ArrayView<float> teacherLogits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs)
    {
        IlgpuKernels.CheckTopKShapes(teacherLogits, rows, vocab, k, temperature, indices, probs);
        if (rows == 0) return;
        lock (_lock)
        {
            ThrowIfDisposed();
            using var status = _accelerator.Allocate1D<int>(rows);
            status.MemSetToZero();
            _kernels.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs, status.View);
            _accelerator.Synchronize();
            int bad = FirstFlagged(status.GetAsArray1D());
            if (bad >= 0) ThrowNonFinite("teacherLogits", bad, ReadRow(teacherLogits, bad, vocab));
        }
    }

    /// <inheritdoc />
    public LossResult Distill(ArrayView<float> studentLogits, int rows, int vocab,
        ArrayView<int> teacherIndices, ArrayView<float> teacherProbs, DistillSettings config,
        ArrayView<float> rowWeights, ArrayView<float> gradient, ArrayView<float> rowLosses, float normalizer = 0f)
    {
        IlgpuKernels.CheckDistillShapes(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient,
            rowLosses, normalizer);
        lock (_lock)
        {
            ThrowIfDisposed();
            var (weightSum, n) = _ilgpu.CheckDistillContents(rows, vocab, teacherIndices, teacherProbs, config, rowWeights, normalizer);
            if (rows == 0) return new LossResult(0, 0, 0, n);
            using var ownLoss = rowLosses.Length > 0 ? null : _accelerator.Allocate1D<float>(rows);
            ArrayView<float> rowLoss = ownLoss is null ? rowLosses : ownLoss.View;
            using var status = _accelerator.Allocate1D<int>(rows);
            status.MemSetToZero();
            _kernels.Distill(studentLogits, gradient, rows, vocab, teacherIndices, teacherProbs, config.TopK, rowWeights,
                (float)n, config.Temperature, Divergence(config), config.Beta, rowLoss, status.View);
            _accelerator.Synchronize();
            int bad = FirstFlagged(status.GetAsArray1D());
            if (bad >= 0) ThrowNonFinite("studentLogits", bad, ReadRow(studentLogits, bad, vocab));
            var losses = new float[rows];
            rowLoss.SubView(0, rows).CopyToCPU(losses);
            float[] weights = [];
            if (rowWeights.Length > 0)
            {
                weights = new float[rows];
                rowWeights.CopyToCPU(weights);
            }
            double sum = WeightedSum(losses, weights);
            return new LossResult(n == 0 ? 0 : sum / n, sum, weightSum, n);
        }
    }

    /// <inheritdoc />
    public LossResult CrossEntropy(ArrayView<float> logits, int rows, int vocab, ArrayView<int> targets,
        ArrayView<float> gradient, ArrayView<float> rowLosses, int ignoreIndex = -100, float labelSmoothing = 0f,
        float normalizer = 0f)
    {
        ThrowIfDisposed();
        return _ilgpu.CrossEntropy(logits, rows, vocab, targets, gradient, rowLosses, ignoreIndex, labelSmoothing, normalizer);
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>Σ_r w_r·L_r in row order over the rows of non-zero weight (all 1 when <paramref name="weights"/> is empty).</summary>
    private static double WeightedSum(float[] losses, ReadOnlySpan<float> weights)
    {
        double sum = 0;
        for (int r = 0; r < losses.Length; r++)
        {
            double w = weights.IsEmpty ? 1.0 : weights[r];
            if (w != 0) sum += w * losses[r];
        }
        return sum;
    }

    private static float[] ReadRow(ArrayView<float> logits, int row, int vocab)
    {
        var values = new float[vocab];
        logits.SubView((long)row * vocab, vocab).CopyToCPU(values);
        return values;
    }

    /// <summary>The first row the kernel flagged (a NaN or infinite logit), or -1.</summary>
    private static int FirstFlagged(int[] flags) => Array.FindIndex(flags, f => f != 0);

    /// <summary>Throws <see cref="NonFiniteLogitException"/> for a flagged row, with its first non-finite column.</summary>
    [DoesNotReturn]
    private static void ThrowNonFinite(string tensor, int row, ReadOnlySpan<float> values)
    {
        int column = 0;
        while (column < values.Length && float.IsFinite(values[column])) column++;
        throw new NonFiniteLogitException(tensor, row, column < values.Length ? column : -1, column < values.Length ? values[column] : float.NaN);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Unloads the kernels and frees their buffers; the accelerator and its context too when <see cref="TryCreate"/> opened them.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _kernels.Dispose();
            _device.Dispose();
            _ilgpu.Dispose();
            if (_ownedContext is not null)
            {
                _accelerator.Dispose();
                _ownedContext.Dispose();
            }
        }
    }
}
