using Raft.Cuda;
using Raft.Kernels;

namespace Raft.Cli;

/// <summary>
/// The hand-written CUDA C loss kernels (<see cref="CudaLossKernels"/>, kernels/*.cu compiled by NVRTC) behind
/// <see cref="ILossKernels"/> for host spans: each call uploads its inputs, launches, synchronizes and downloads the
/// results (so it pays the PCIe copies that the device-resident paths avoid). Cross-entropy has no CUDA C kernel and
/// runs on <see cref="CpuKernels"/>. Arguments are checked on the host with the same rules and messages as every
/// implementation (<see cref="LossArguments"/>); a NaN or infinite logit raises <see cref="NonFiniteLogitException"/>
/// with its row. Calls are serialized.
/// </summary>
internal sealed class CudaCKernels : ILossKernels, IDisposable
{
    private readonly CudaDevice _device;
    private readonly CudaLossKernels _kernels;
    private readonly CpuKernels _cpu;
    private readonly object _lock = new();

    private CudaCKernels(CudaDevice device, CudaLossKernels kernels, int cpuThreads)
    {
        _device = device;
        _kernels = kernels;
        _cpu = new CpuKernels(cpuThreads);
    }

    /// <summary>Opens CUDA device 0 and loads the kernels (PTX cached on disk), or says why not.</summary>
    public static bool TryCreate(int cpuThreads, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CudaCKernels? kernels, out string reason)
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
        if (!CudaDevice.TryOpen(0, out var device, out reason)) return false;
        try
        {
            kernels = new CudaCKernels(device, CudaLossKernels.Load(device), cpuThreads);
            return true;
        }
        catch (Exception e) when (e is CudaException or NvrtcException or NotSupportedException or IOException)
        {
            device.Dispose();
            reason = $"{device.Name}: the CUDA C kernels cannot be loaded ({e.GetType().Name}: {e.Message})";
            return false;
        }
    }

    /// <inheritdoc />
    public string Name => "cuda-c";

    /// <summary>One line for the log: the device, the architecture and where cross-entropy runs.</summary>
    public string Description => $"cuda-c: {_device} (kernels/*.cu for {_kernels.Architecture}; cross-entropy on {_cpu.Name})";

    /// <inheritdoc />
    public void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        LossArguments.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs);
        if (rows == 0) return;
        lock (_lock)
        {
            using var logits = _device.Upload(teacherLogits);
            using var idx = _device.Allocate<int>(indices.Length);
            using var p = _device.Allocate<float>(probs.Length);
            using var status = _device.Allocate<int>(rows);
            status.Clear();
            _kernels.TopKSoftmax(logits.Pointer, rows, vocab, k, temperature, idx.Pointer, p.Pointer, status.Pointer);
            _device.Synchronize();
            ThrowOnFlaggedRow(status, teacherLogits, vocab, "teacherLogits");
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
        double weightSum = 0;
        for (int r = 0; r < rows; r++) weightSum += rowWeights.IsEmpty ? 1.0 : rowWeights[r];
        double n = normalizer > 0 ? normalizer : weightSum;
        if (rows == 0) return new LossResult(0, 0, 0, n);
        bool inPlace = !gradient.IsEmpty && studentLogits.Overlaps(gradient);
        var divergence = config.EffectiveKind switch
        {
            DistillLossKind.ForwardKL => KdDivergence.ForwardKL,
            DistillLossKind.ReverseKL => KdDivergence.ReverseKL,
            _ => KdDivergence.Jsd,
        };
        lock (_lock)
        {
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
                rowWeights.IsEmpty ? DevicePointer.Null : weights.Pointer, (float)n, config.Temperature, divergence, config.Beta,
                rowLoss.Pointer, status.Pointer);
            _device.Synchronize();
            ThrowOnFlaggedRow(status, studentLogits, vocab, "studentLogits");
            var losses = rowLoss.ToArray();
            double sum = 0;
            for (int r = 0; r < rows; r++)
            {
                double w = rowWeights.IsEmpty ? 1.0 : rowWeights[r];
                if (w != 0) sum += w * losses[r];
            }
            if (!gradient.IsEmpty) (inPlace ? student : grad).CopyTo(gradient);
            return new LossResult(n == 0 ? 0 : sum / n, sum, weightSum, n);
        }
    }

    /// <inheritdoc />
    public LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f) =>
        _cpu.CrossEntropy(logits, rows, vocab, targets, gradient, ignoreIndex, labelSmoothing, normalizer);

    /// <summary>Unloads the kernels and releases the device's context.</summary>
    public void Dispose()
    {
        _kernels.Dispose();
        _device.Dispose();
    }

    private static void ThrowOnFlaggedRow(DeviceBuffer<int> status, ReadOnlySpan<float> logits, int vocab, string tensor)
    {
        var flags = status.ToArray();
        int row = Array.FindIndex(flags, f => f != 0);
        if (row < 0) return;
        var values = logits.Slice(row * vocab, vocab);
        int column = 0;
        while (column < vocab && float.IsFinite(values[column])) column++;
        throw new NonFiniteLogitException(tensor, row, column < vocab ? column : -1, column < vocab ? values[column] : float.NaN);
    }
}
