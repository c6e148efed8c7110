using Raft.Kernels;

namespace Raft.Benchmarks.Distill;

/// <summary>The engine kernel measured as <c>Fused</c>.</summary>
public static class FusedKernel
{
    /// <summary>A new instance of the engine's fast CPU kernel (widest SIMD level, all cores).</summary>
    public static ILossKernels Create() => new CpuKernels();

    /// <summary>One call as the benchmark makes it: gradient written in place over the student logits.</summary>
    public static double Run(ILossKernels kernels, DistillProblem p, float[] gradient) =>
        kernels.Distill(p.Student, p.Rows, p.Vocab, p.Indices, p.Probs, new DistillSettings(p.TopK, p.Temperature),
            default, gradient).Loss;
}
