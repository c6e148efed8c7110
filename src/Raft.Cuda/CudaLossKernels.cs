namespace Raft.Cuda;

/// <summary>The divergence computed by <c>CudaLossKernels.Distill</c> (the kernel's `kind` argument).</summary>
public enum KdDivergence
{
    /// <summary>Forward KL, KL(p_K ‖ q) with q the student's full-vocabulary softmax at τ.</summary>
    ForwardKL = 0,
    /// <summary>Reverse KL on the teacher's K support, KL(q_K ‖ p_K).</summary>
    ReverseKL = 1,
    /// <summary>Generalized JSD with 0 &lt; β &lt; 1 (β = 0 and β = 1 must be resolved to the KL kinds by the caller).</summary>
    Jsd = 2,
}

/// <summary>
/// The loss kernels of kernels/*.cu compiled for one device and launched on raw device pointers, so that the
/// buffers may belong to another library; for ILGPU, load them on <see cref="CudaDevice.FromIlgpu"/> and use the
/// overloads taking <c>ArrayView</c>s and an <c>AcceleratorStream</c> (CudaLossKernels.Ilgpu.cs), which check the
/// views' lengths and accelerator and that ILGPU's context is current.
/// Launches are asynchronous on the given stream; per-row status flags report NaN or infinite logits, which the
/// caller checks after synchronizing. Arguments are validated here; the pointed-to memory cannot be.
/// </summary>
public sealed partial class CudaLossKernels : IDisposable
{
    /// <summary>Threads per block of every launch (one block per row for the loss kernels).</summary>
    public const int ThreadsPerBlock = 256;

    /// <summary>The largest K whose top-K survivors are sorted in shared memory (K·8 bytes); larger K sorts in the output arrays.</summary>
    public const int TopKSharedMaxK = 4096;

    /// <summary>The largest K whose student logits are gathered into shared memory (K·4 bytes); in-place distillation requires K ≤ this.</summary>
    public const int DistillSharedMaxK = 8192;

    /// <summary>Entry point of <see cref="KernelSources.TopKSoftmax"/>.</summary>
    public const string TopKEntry = "raft_topk_softmax";

    /// <summary>Entry point of <see cref="KernelSources.KdLoss"/>.</summary>
    public const string KdLossEntry = "raft_kd_loss";

    /// <summary>Entry point of <see cref="KernelSources.Copy"/>.</summary>
    public const string CopyEntry = "raft_copy_f32";

    private readonly CudaModule[] _modules;
    private readonly CudaFunction _topK, _kdLoss, _copy;

    private CudaLossKernels(CudaDevice device, string arch, CudaModule topK, CudaModule kd, CudaModule copy)
    {
        Device = device;
        Architecture = arch;
        _modules = [topK, kd, copy];
        _topK = topK.GetFunction(TopKEntry);
        _kdLoss = kd.GetFunction(KdLossEntry);
        _copy = copy.GetFunction(CopyEntry);
    }

    /// <summary>The device the kernels are loaded on.</summary>
    public CudaDevice Device { get; }

    /// <summary>The NVRTC architecture the kernels were compiled for.</summary>
    public string Architecture { get; }

    /// <summary>
    /// Compiles (or takes from <paramref name="cache"/>, by default a <see cref="PtxCache"/> in its default
    /// directory) the three kernels for <paramref name="device"/> and loads them.
    /// </summary>
    /// <exception cref="NvrtcException">A kernel failed to compile.</exception>
    /// <exception cref="CudaException">The driver rejected the PTX.</exception>
    /// <exception cref="NotSupportedException">The device is older than compute capability 7.0.</exception>
    public static CudaLossKernels Load(CudaDevice device, PtxCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.ComputeCapabilityMajor < 7)
            throw new NotSupportedException($"The loss kernels need compute capability 7.0 or newer (warp match intrinsics); {device} has {device.ComputeCapabilityMajor}.{device.ComputeCapabilityMinor}.");
        cache ??= new PtxCache();
        var arch = device.ChooseArchitecture();
        var loaded = new List<CudaModule>();
        try
        {
            foreach (var file in new[] { KernelSources.TopKSoftmax, KernelSources.KdLoss, KernelSources.Copy })
                loaded.Add(device.LoadModule(cache.GetOrCompileKernel(file, arch).Ptx));
            return new CudaLossKernels(device, arch, loaded[0], loaded[1], loaded[2]);
        }
        catch
        {
            foreach (var m in loaded) m.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Top-K temperature softmax: <paramref name="logits"/> [rows, vocab] fp32 → <paramref name="indices"/> [rows, k]
    /// int32 (descending logit, ties to the lower index) and <paramref name="probs"/> [rows, k] fp32 =
    /// softmax(logit/τ) over the kept entries; <paramref name="status"/> [rows] int32 (or null) gets 1 for a row
    /// holding a NaN or an infinity.
    /// </summary>
    public void TopKSoftmax(DevicePointer logits, int rows, int vocab, int k, float temperature,
        DevicePointer indices, DevicePointer probs, DevicePointer status, IntPtr stream = default)
    {
        Shape(rows, vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{vocab} (the vocabulary size).");
        Temperature(temperature);
        NotNull(logits, nameof(logits));
        NotNull(indices, nameof(indices));
        NotNull(probs, nameof(probs));
        if (rows == 0) return;
        uint shared = k <= TopKSharedMaxK ? (uint)k * 8u : 0u;
        var args = new KernelArguments().Add(logits).Add(rows).Add(vocab).Add(k).Add(temperature)
            .Add(indices).Add(probs).Add(status);
        _topK.Launch((uint)rows, ThreadsPerBlock, shared, args, stream);
    }

    /// <summary>
    /// Fused distillation loss and gradient. <paramref name="student"/> [rows, vocab];
    /// <paramref name="gradient"/> [rows, vocab], null (loss only) or equal to <paramref name="student"/> (in place,
    /// requires k ≤ <see cref="DistillSharedMaxK"/>); <paramref name="teacherIndices"/> int32 and
    /// <paramref name="teacherProbs"/> fp32 [rows, k]; <paramref name="rowWeights"/> [rows] or null (all 1).
    /// Writes <paramref name="rowLoss"/> [rows] = τ²·D_r (unweighted; 0 for a row of weight 0) and
    /// <paramref name="rowStatus"/> [rows] (or null): bit 0 set for a NaN or infinite student logit. The gradient
    /// written is w_r/N·∂(τ²·D_r)/∂student with N = <paramref name="normalizer"/> (N = 0 gives zero gradients).
    /// </summary>
    public void Distill(DevicePointer student, DevicePointer gradient, int rows, int vocab,
        DevicePointer teacherIndices, DevicePointer teacherProbs, int k, DevicePointer rowWeights,
        float normalizer, float temperature, KdDivergence divergence, float beta,
        DevicePointer rowLoss, DevicePointer rowStatus, IntPtr stream = default)
    {
        Shape(rows, vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{vocab} (the vocabulary size).");
        Temperature(temperature);
        if (!(normalizer >= 0f) || !float.IsFinite(normalizer))
            throw new ArgumentOutOfRangeException(nameof(normalizer), normalizer, "normalizer must be finite and ≥ 0.");
        if (!Enum.IsDefined(divergence))
            throw new ArgumentOutOfRangeException(nameof(divergence), divergence, "Unknown divergence.");
        if (divergence == KdDivergence.Jsd && !(beta > 0f && beta < 1f))
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "JSD needs 0 < beta < 1; resolve beta = 0 / 1 to forward / reverse KL.");
        NotNull(student, nameof(student));
        NotNull(teacherIndices, nameof(teacherIndices));
        NotNull(teacherProbs, nameof(teacherProbs));
        NotNull(rowLoss, nameof(rowLoss));
        if (gradient == student && k > DistillSharedMaxK)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"In-place distillation supports k ≤ {DistillSharedMaxK}; pass a separate gradient buffer.");
        if (rows == 0) return;
        uint shared = k <= DistillSharedMaxK ? (uint)k * 4u : 0u;
        var args = new KernelArguments().Add(student).Add(gradient).Add(rows).Add(vocab)
            .Add(teacherIndices).Add(teacherProbs).Add(k).Add(rowWeights).Add(normalizer).Add(temperature)
            .Add((int)divergence).Add(beta).Add(rowLoss).Add(rowStatus);
        _kdLoss.Launch((uint)rows, ThreadsPerBlock, shared, args, stream);
    }

    /// <summary>Copies <paramref name="count"/> floats from <paramref name="source"/> to <paramref name="destination"/> (non-overlapping).</summary>
    public void Copy(DevicePointer source, DevicePointer destination, long count, IntPtr stream = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0) return;
        NotNull(source, nameof(source));
        NotNull(destination, nameof(destination));
        long blocksNeeded = (count / 4 + ThreadsPerBlock - 1) / ThreadsPerBlock;
        uint grid = (uint)Math.Clamp(blocksNeeded, 1, Device.MultiprocessorCount * 8L);
        _copy.Launch(grid, ThreadsPerBlock, 0, new KernelArguments().Add(source).Add(destination).Add(count), stream);
    }

    /// <summary>Unloads the kernels' modules.</summary>
    public void Dispose()
    {
        foreach (var m in _modules) m.Dispose();
    }

    private static void Shape(int rows, int vocab)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (vocab < 1) throw new ArgumentOutOfRangeException(nameof(vocab), vocab, "vocab must be ≥ 1.");
    }

    private static void Temperature(float temperature)
    {
        if (!(temperature > 0f) || !float.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be a finite number > 0.");
    }

    private static void NotNull(DevicePointer p, string name)
    {
        if (p.IsNull) throw new ArgumentException($"{name} must not be the null device pointer.", name);
    }
}
