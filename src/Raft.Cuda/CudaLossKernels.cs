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

/// <summary>Which top-K kernel <see cref="CudaLossKernels.TopKSoftmax(DevicePointer, int, int, int, float, DevicePointer, DevicePointer, DevicePointer, TopKVariant, IntPtr)"/> launches.</summary>
public enum TopKVariant
{
    /// <summary><see cref="Filter"/> when K ≤ <see cref="CudaLossKernels.TopKFilterMaxK"/>, else <see cref="Radix"/>.</summary>
    Auto = 0,
    /// <summary>raft_topk_softmax: four 8-bit radix-select passes and a gather pass over the row (five reads), any K.</summary>
    Radix = 1,
    /// <summary>raft_topk_softmax_filter: one read of the row through a running threshold and a shared-memory candidate buffer.</summary>
    Filter = 2,
}

/// <summary>Which distillation kernel <see cref="CudaLossKernels.Distill(DevicePointer, DevicePointer, int, int, DevicePointer, DevicePointer, int, DevicePointer, float, float, KdDivergence, float, DevicePointer, DevicePointer, DistillVariant, IntPtr)"/> launches.</summary>
public enum DistillVariant
{
    /// <summary>The kernel lab's winner on an H200 (<see cref="CudaLossKernels.ChooseDistill"/>): <see cref="TwoPass"/>.</summary>
    Auto = 0,
    /// <summary>raft_kd_loss: one block per row, the row read twice (log-sum-exp pass, gradient pass).</summary>
    TwoPass = 1,
    /// <summary>raft_kd_loss_resident1: the whole row in one block's shared memory, read once.</summary>
    Resident1 = 2,
    /// <summary>raft_kd_loss_resident2: the row split over a cluster of 2 blocks (compute capability 9.0+).</summary>
    Resident2 = 3,
    /// <summary>As <see cref="Resident2"/> with 4 blocks.</summary>
    Resident4 = 4,
    /// <summary>As <see cref="Resident2"/> with 8 blocks.</summary>
    Resident8 = 5,
    /// <summary>
    /// raft_kd_loss with 1,024 threads and one block per multiprocessor (padded shared memory), so that the rows in
    /// flight (one per multiprocessor) may fit in L2 and the second read hit it.
    /// </summary>
    TwoPassL2 = 6,
    /// <summary>
    /// raft_kd_loss_bulk2: as <see cref="Resident2"/>, the parts brought into shared memory by the bulk-copy engine,
    /// double-buffered across rows (compute capability 9.0+; vocab a multiple of 4, the student 16-byte aligned).
    /// </summary>
    Bulk2 = 7,
    /// <summary>As <see cref="Bulk2"/> with 4 blocks per row.</summary>
    Bulk4 = 8,
    /// <summary>As <see cref="Bulk2"/> with 8 blocks per row.</summary>
    Bulk8 = 9,
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

    /// <summary>Entry point of the one-read top-K kernel in <see cref="KernelSources.TopKSoftmax"/>.</summary>
    public const string TopKFilterEntry = "raft_topk_softmax_filter";

    /// <summary>Threads per block of the one-read top-K kernel (fixed by its source).</summary>
    public const int TopKFilterThreads = 256;

    /// <summary>The largest K of the one-read top-K kernel (its candidate buffer less one step).</summary>
    public const int TopKFilterMaxK = 2048;

    /// <summary>Entry points of the row-resident distillation kernels, by blocks per row (1, 2, 4, 8).</summary>
    public static string ResidentEntry(int blocksPerRow) => "raft_kd_loss_resident" + blocksPerRow.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Entry points of the bulk-copy distillation kernels, by blocks per row (2, 4, 8).</summary>
    public static string BulkEntry(int blocksPerRow) => "raft_kd_loss_bulk" + blocksPerRow.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The largest K of the row-resident distillation kernels (their K gathered logits share the row's shared memory).</summary>
    public const int ResidentMaxK = 4096;

    /// <summary>Entry point of <see cref="KernelSources.Copy"/>.</summary>
    public const string CopyEntry = "raft_copy_f32";

    private readonly CudaModule[] _modules;
    private readonly CudaFunction _topK, _topKFilter, _kdLoss, _copy;
    private readonly CudaFunction?[] _resident = new CudaFunction?[9]; // by blocks per row
    private readonly CudaFunction?[] _bulk = new CudaFunction?[9];     // by blocks per row (2, 4, 8)
    private readonly int[] _residentLimit = new int[17];               // dynamic shared memory each was opened up to (bulk: + 8)
    private int _twoPassL2Limit;
    private readonly (int Bytes, int Clusters)[] _residentClusters = new (int, int)[17]; // clusters that fit on the device at once, by shared size

    private CudaLossKernels(CudaDevice device, string arch, CudaModule topK, CudaModule kd, CudaModule copy)
    {
        Device = device;
        Architecture = arch;
        _modules = [topK, kd, copy];
        _topK = topK.GetFunction(TopKEntry);
        _topKFilter = topK.GetFunction(TopKFilterEntry);
        _kdLoss = kd.GetFunction(KdLossEntry);
        _copy = copy.GetFunction(CopyEntry);
        _resident[1] = kd.GetFunction(ResidentEntry(1));
        // the cluster variants exist in PTX built for compute_90 and newer (thread-block clusters)
        if (ClusterCapable)
            foreach (int c in (int[])[2, 4, 8])
            {
                _resident[c] = kd.GetFunction(ResidentEntry(c));
                _bulk[c] = kd.GetFunction(BulkEntry(c));
            }
    }

    /// <summary>Whether the device and the compiled PTX have thread-block clusters (compute capability 9.0+).</summary>
    public bool ClusterCapable => Device.ComputeCapabilityMajor >= 9 && ArchitectureNumber >= 90;

    private int ArchitectureNumber => int.TryParse(Architecture.AsSpan("compute_".Length), out int n) ? n : 0;

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
        => TopKSoftmax(logits, rows, vocab, k, temperature, indices, probs, status, TopKVariant.Auto, stream);

    /// <summary>As the overload without <paramref name="variant"/>, with the kernel chosen explicitly (kernel lab and tests).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The variant cannot take this K.</exception>
    public void TopKSoftmax(DevicePointer logits, int rows, int vocab, int k, float temperature,
        DevicePointer indices, DevicePointer probs, DevicePointer status, TopKVariant variant, IntPtr stream = default)
    {
        if (!Enum.IsDefined(variant)) throw new ArgumentOutOfRangeException(nameof(variant), variant, "Unknown top-K variant.");
        Shape(rows, vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{vocab} (the vocabulary size).");
        Temperature(temperature);
        NotNull(logits, nameof(logits));
        NotNull(indices, nameof(indices));
        NotNull(probs, nameof(probs));
        if (rows == 0) return;
        if (variant == TopKVariant.Filter && k > TopKFilterMaxK)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"The filter top-K kernel takes k ≤ {TopKFilterMaxK}.");
        var args = new KernelArguments().Add(logits).Add(rows).Add(vocab).Add(k).Add(temperature)
            .Add(indices).Add(probs).Add(status);
        if (variant == TopKVariant.Filter || (variant == TopKVariant.Auto && k <= TopKFilterMaxK))
        {
            _topKFilter.Launch((uint)rows, TopKFilterThreads, 0, args, stream);
            return;
        }
        uint shared = k <= TopKSharedMaxK ? (uint)k * 8u : 0u;
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
        => Distill(student, gradient, rows, vocab, teacherIndices, teacherProbs, k, rowWeights, normalizer, temperature,
            divergence, beta, rowLoss, rowStatus, DistillVariant.Auto, stream);

    /// <summary>As the overload without <paramref name="variant"/>, with the kernel chosen explicitly (kernel lab and tests).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The variant cannot take this shape on this device (<see cref="Supports"/>).</exception>
    public void Distill(DevicePointer student, DevicePointer gradient, int rows, int vocab,
        DevicePointer teacherIndices, DevicePointer teacherProbs, int k, DevicePointer rowWeights,
        float normalizer, float temperature, KdDivergence divergence, float beta,
        DevicePointer rowLoss, DevicePointer rowStatus, DistillVariant variant, IntPtr stream = default)
    {
        if (!Enum.IsDefined(variant)) throw new ArgumentOutOfRangeException(nameof(variant), variant, "Unknown distillation variant.");
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
        if (variant == DistillVariant.Auto) variant = ChooseDistill(vocab, k);
        else if (!Supports(variant, vocab, k))
            throw new ArgumentOutOfRangeException(nameof(variant), variant,
                $"{variant} cannot take vocab {vocab}, k {k} on {Device.Name} (compute capability {Device.ComputeCapabilityMajor}.{Device.ComputeCapabilityMinor}, {Device.MaxSharedMemoryPerBlockOptIn} bytes of shared memory per block).");
        if (rows == 0) return;
        var args = new KernelArguments().Add(student).Add(gradient).Add(rows).Add(vocab)
            .Add(teacherIndices).Add(teacherProbs).Add(k).Add(rowWeights).Add(normalizer).Add(temperature)
            .Add((int)divergence).Add(beta).Add(rowLoss).Add(rowStatus);
        if (variant == DistillVariant.TwoPass)
        {
            uint shared = k <= DistillSharedMaxK ? (uint)k * 4u : 0u;
            _kdLoss.Launch((uint)rows, ThreadsPerBlock, shared, args, stream);
            return;
        }
        if (variant == DistillVariant.TwoPassL2)
        {
            // more than half of the multiprocessor's shared memory: one block per multiprocessor
            int padded = Math.Max(k * 4, Device.MaxSharedMemoryPerBlockOptIn / 2 + 4096);
            if (padded > _twoPassL2Limit)
            {
                _kdLoss.SetMaxDynamicSharedMemory(padded);
                _twoPassL2Limit = padded;
            }
            _kdLoss.Launch((uint)rows, 1024, (uint)padded, args, stream);
            return;
        }
        int c = BlocksPerRow(variant);
        int chunk = ResidentChunk(c, vocab);
        bool bulk = IsBulk(variant);
        if (bulk && student.Address % 16 != 0)
            throw new ArgumentException($"{variant} needs a 16-byte aligned student (got address 0x{student.Address:x}).", nameof(student));
        int bytes = bulk ? BulkSharedBytes(c, vocab, k) : ResidentSharedBytes(c, vocab, k);
        int slot = bulk ? c + 8 : c; // the bulk kernels' launch limits and occupancy are kept apart from the resident ones'
        var f = bulk ? _bulk[c]! : _resident[c]!;
        int threads = ResidentThreads(bytes);
        if (bytes > _residentLimit[slot])
        {
            f.SetMaxDynamicSharedMemory(bytes);
            _residentLimit[slot] = bytes;
        }
        if (_residentClusters[slot].Bytes != bytes) _residentClusters[slot] = (bytes, f.MaxActiveClusters(c, threads, bytes));
        args.Add(chunk);
        // as many clusters as fit at once (each loops over rows), so that none waits for free multiprocessors mid-run
        long clusters = Math.Min(rows, (long)_residentClusters[slot].Clusters);
        f.Launch((uint)(clusters * c), (uint)threads, (uint)bytes, args, stream);
    }

    /// <summary>Blocks per row of a row-resident variant (0 for <see cref="DistillVariant.TwoPass"/> and <see cref="DistillVariant.Auto"/>).</summary>
    public static int BlocksPerRow(DistillVariant variant) => variant switch
    {
        DistillVariant.Resident1 => 1,
        DistillVariant.Resident2 or DistillVariant.Bulk2 => 2,
        DistillVariant.Resident4 or DistillVariant.Bulk4 => 4,
        DistillVariant.Resident8 or DistillVariant.Bulk8 => 8,
        _ => 0,
    };

    /// <summary>Whether <paramref name="variant"/> is one of the bulk-copy (double-buffered) kernels.</summary>
    public static bool IsBulk(DistillVariant variant) => variant is DistillVariant.Bulk2 or DistillVariant.Bulk4 or DistillVariant.Bulk8;

    /// <summary>Dynamic shared memory per block of a bulk-copy launch: two buffers of its part and the K gathered logits.</summary>
    public static int BulkSharedBytes(int blocksPerRow, int vocab, int k) => (2 * ResidentChunk(blocksPerRow, vocab) + k) * 4;

    /// <summary>Logits per block of a row-resident launch: ⌈vocab / blocks⌉ rounded up to a multiple of 4.</summary>
    public static int ResidentChunk(int blocksPerRow, int vocab) => (int)(((long)vocab + blocksPerRow - 1) / blocksPerRow + 3) / 4 * 4;

    /// <summary>Dynamic shared memory per block of a row-resident launch: its part (plus 4 for alignment) and the K gathered logits.</summary>
    public static int ResidentSharedBytes(int blocksPerRow, int vocab, int k) => (ResidentChunk(blocksPerRow, vocab) + 4 + k) * 4;

    /// <summary>
    /// Threads per block of a row-resident launch: 512 when two or more blocks fit on a multiprocessor (≤ 110 KiB
    /// each; measured on an H200: Resident8 at V 151,936 with 1,024 threads, one block per multiprocessor, ran
    /// 17 ms against 12 ms with 512), else 1,024.
    /// </summary>
    public static int ResidentThreads(int sharedBytes) => sharedBytes > 110 * 1024 ? 1024 : 512;

    /// <summary>Whether <paramref name="variant"/> can run this shape on this device (<see cref="DistillVariant.Auto"/> and <see cref="DistillVariant.TwoPass"/> always can).</summary>
    public bool Supports(DistillVariant variant, int vocab, int k)
    {
        if (variant == DistillVariant.TwoPassL2)
            return k <= DistillSharedMaxK && Device.MaxSharedMemoryPerBlockOptIn / 2 + 4096 + 2048 <= Device.MaxSharedMemoryPerBlockOptIn;
        int c = BlocksPerRow(variant);
        if (c == 0) return Enum.IsDefined(variant);
        if (IsBulk(variant))
            return _bulk[c] is not null && k <= ResidentMaxK && vocab % 4 == 0
                   && BulkSharedBytes(c, vocab, k) + 2048 <= Device.MaxSharedMemoryPerBlockOptIn;
        if (_resident[c] is null || k > ResidentMaxK) return false;
        // the kernels keep ~1.5 KB of static shared memory besides the dynamic part
        return ResidentSharedBytes(c, vocab, k) + 2048 <= Device.MaxSharedMemoryPerBlockOptIn;
    }

    /// <summary>
    /// What <see cref="DistillVariant.Auto"/> runs: the two-pass kernel. The kernel lab (raft-gpubench --lab) timed
    /// every variant on an H200 (16,384 rows, K 64, in place): at V 151,936 two-pass 7.88 ms, Resident4 10.9 ms,
    /// Resident8 16.9 ms; at V 32,000 two-pass 1.78 ms, Resident2 1.86 ms, Resident1 2.10 ms. The row-resident
    /// kernels move a third fewer bytes but run fewer blocks per multiprocessor, and their per-row chain of
    /// dependent steps (teacher indices, cluster barriers, reductions) is not hidden; they stay in the lab.
    /// </summary>
    public DistillVariant ChooseDistill(int vocab, int k)
    {
        _ = vocab;
        _ = k;
        return DistillVariant.TwoPass;
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
