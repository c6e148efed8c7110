using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Raft.Kernels.Native;

/// <summary>
/// The C ABI of the loss kernels (<c>include/raft_kernels.h</c> documents each function for C callers): thin
/// adapters from raw pointers and sizes to <see cref="CpuKernels"/> and <see cref="EmaBalancer"/>, which validate
/// every argument before writing anything. Each export returns a <see cref="Status"/> code and leaves a message for
/// <see cref="LastErrorMessage"/> on failure; no exception crosses the boundary. All tensors are row-major and
/// C-contiguous; a null pointer is accepted only where the header says "may be NULL" (or for an empty tensor).
/// </summary>
public static unsafe class Exports
{
    /// <summary>The ABI version; bumped on any change of a signature or of a struct layout.</summary>
    public const int AbiVersionNumber = 1;

    private static volatile CpuKernels s_kernels = new();

    /// <summary><c>int32_t raft_abi_version(void)</c>.</summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_abi_version")]
    public static int AbiVersion() => AbiVersionNumber;

    /// <summary><c>const char* raft_last_error(void)</c>: the calling thread's last error message ("" after a success).</summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_last_error")]
    public static byte* LastErrorMessage() => LastError.Pointer;

    /// <summary><c>int32_t raft_set_num_threads(int32_t n)</c>: threads over rows for later calls (0: all cores).</summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_set_num_threads")]
    public static int SetNumThreads(int threads) => LastError.Guarded(() => s_kernels = new CpuKernels(threads));

    /// <summary><c>const char* raft_kernels_name(void)</c>: the kernels in use, e.g. "cpu-vector256" (static string).</summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_kernels_name")]
    public static byte* KernelsName() => s_kernels.Level switch
    {
        SimdLevel.Vector512 => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("cpu-vector512\0"u8)),
        SimdLevel.Vector256 => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("cpu-vector256\0"u8)),
        _ => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("cpu-scalar\0"u8)),
    };

    /// <summary>
    /// <c>raft_topk_softmax(logits, rows, vocab, k, temperature, indices, probs)</c>: see
    /// <see cref="ILossKernels.TopKSoftmax"/>; logits [rows, vocab] → indices (int32) and probs [rows, k].
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_topk_softmax")]
    public static int TopKSoftmax(float* teacherLogits, int rows, int vocab, int k, float temperature, int* indices, float* probs) =>
        LastError.Guarded(() =>
        {
            int n = Elements(rows, vocab, "rows × vocab"), nk = Elements(rows, k, "rows × k");
            s_kernels.TopKSoftmax(Span(teacherLogits, n, "teacher_logits"), rows, vocab, k, temperature,
                SpanW(indices, nk, "indices"), SpanW(probs, nk, "probs"));
        });

    /// <summary>
    /// <c>raft_distill(...)</c>: the fused distillation loss and gradient of <see cref="ILossKernels.Distill"/>;
    /// <paramref name="kind"/> is a <see cref="DistillLossKind"/> (0 forward KL, 1 reverse KL, 2 JSD(β)).
    /// <paramref name="rowWeights"/> [rows] may be NULL (all 1); <paramref name="gradient"/> [rows, vocab] may be NULL
    /// (loss only) or equal to <paramref name="studentLogits"/> (in place). The result is written to <paramref name="result"/>.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_distill")]
    public static int Distill(float* studentLogits, int rows, int vocab, int* teacherIndices, float* teacherProbs,
        int topK, float temperature, int kind, float beta, float* rowWeights, float* gradient, float normalizer,
        LossResultAbi* result) =>
        LastError.Guarded(() =>
        {
            int n = Elements(rows, vocab, "rows × vocab"), nk = Elements(rows, Math.Max(topK, 0), "rows × top_k");
            NotNull(result, "result");
            var r = s_kernels.Distill(Span(studentLogits, n, "student_logits"), rows, vocab,
                Span(teacherIndices, nk, "teacher_indices"), Span(teacherProbs, nk, "teacher_probs"),
                new DistillSettings(topK, temperature, (DistillLossKind)kind, beta),
                Optional(rowWeights, rows), OptionalW(gradient, n), normalizer);
            *result = new LossResultAbi(r);
        });

    /// <summary>
    /// <c>raft_cross_entropy(...)</c>: the SFT cross-entropy of <see cref="ILossKernels.CrossEntropy"/> with label
    /// smoothing; targets (int32) [rows]; <paramref name="gradient"/> may be NULL or equal to <paramref name="logits"/>.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_cross_entropy")]
    public static int CrossEntropy(float* logits, int rows, int vocab, int* targets, float* gradient, int ignoreIndex,
        float labelSmoothing, float normalizer, LossResultAbi* result) =>
        LastError.Guarded(() =>
        {
            int n = Elements(rows, vocab, "rows × vocab");
            NotNull(result, "result");
            var r = s_kernels.CrossEntropy(Span(logits, n, "logits"), rows, vocab, Span(targets, rows, "targets"),
                OptionalW(gradient, n), ignoreIndex, labelSmoothing, normalizer);
            *result = new LossResultAbi(r);
        });

    /// <summary>
    /// <c>raft_ema_balancer_step(terms, decay, target_ratio, ema, steps, losses, weights)</c>: one
    /// <see cref="EmaBalancer.Step"/> over caller-held state: <paramref name="ema"/> [terms] and
    /// <paramref name="steps"/> are read and updated in place (start from zeros), <paramref name="weights"/> [terms]
    /// receives the weights to apply to this step's <paramref name="losses"/>. On error the state is unchanged.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "raft_ema_balancer_step")]
    public static int EmaBalancerStep(int terms, double decay, double* targetRatio, double* ema, long* steps,
        double* losses, double* weights) =>
        LastError.Guarded(() =>
        {
            if (terms < 1) throw new ArgumentException($"terms must be ≥ 1, got {terms}.", "terms");
            NotNull(steps, "steps");
            var balancer = new EmaBalancer(new EmaBalancerState(decay, Span(targetRatio, terms, "target_ratio").ToArray(),
                Span(ema, terms, "ema").ToArray(), *steps));
            var w = balancer.Step(Span(losses, terms, "losses"));
            var output = SpanW(weights, terms, "weights");
            var state = balancer.State;
            state.Ema.CopyTo(new Span<double>(ema, terms));
            *steps = state.Steps;
            w.CopyTo(output);
        });

    // ---------------------------------------------------------------- pointer checks

    private static int Elements(int a, int b, string what)
    {
        if (a < 0 || b < 0) return 0; // the kernels' own checks name the negative size
        long n = (long)a * b;
        if (n > int.MaxValue)
            throw new ArgumentException($"{what} = {n} exceeds 2^31 − 1 elements; call per chunk of rows with a shared normalizer.", what);
        return (int)n;
    }

    private static void NotNull(void* p, string name)
    {
        if (p == null) throw new ArgumentException($"{name} must not be NULL.", name);
    }

    private static ReadOnlySpan<T> Span<T>(T* p, int n, string name) where T : unmanaged
    {
        if (n > 0) NotNull(p, name);
        return new ReadOnlySpan<T>(p, n);
    }

    private static Span<T> SpanW<T>(T* p, int n, string name) where T : unmanaged
    {
        if (n > 0) NotNull(p, name);
        return new Span<T>(p, n);
    }

    private static ReadOnlySpan<T> Optional<T>(T* p, int n) where T : unmanaged => p == null ? default : new ReadOnlySpan<T>(p, n);

    private static Span<T> OptionalW<T>(T* p, int n) where T : unmanaged => p == null ? default : new Span<T>(p, n);
}

/// <summary><c>raft_loss_result</c>: the <see cref="LossResult"/> of a loss call, four doubles.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct LossResultAbi(LossResult r)
{
    /// <summary>The weighted mean loss.</summary>
    public readonly double Loss = r.Loss;
    /// <summary>Σ_r w_r·L_r.</summary>
    public readonly double LossSum = r.LossSum;
    /// <summary>Σ_r w_r (cross-entropy: rows not ignored).</summary>
    public readonly double WeightSum = r.WeightSum;
    /// <summary>The divisor used.</summary>
    public readonly double Normalizer = r.Normalizer;
}
