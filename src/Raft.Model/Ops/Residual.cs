using System.Numerics.Tensors;

namespace Raft.Model.Ops;

/// <summary>
/// Residual add, x += y (the pre-norm block's "x = x + f(norm(x))"). Its backward is the identity on both
/// branches: the stream gradient flows into f's output unchanged and also continues to x.
/// </summary>
internal static class Residual
{
    /// <summary>x[N, C] += y[N, C].</summary>
    public static void Forward(Span<float> x, ReadOnlySpan<float> y) => TensorPrimitives.Add(x, y, x);

    /// <summary>dx[N, C] += dOut[N, C] (the branch gradient; the stream gradient needs no work).</summary>
    public static void Backward(ReadOnlySpan<float> dOut, Span<float> dx) => TensorPrimitives.Add(dx, dOut, dx);
}

/// <summary>Small elementwise helpers over spans (SIMD through System.Numerics.Tensors).</summary>
internal static class Vec
{
    /// <summary>dst += src.</summary>
    public static void AddInPlace(Span<float> dst, ReadOnlySpan<float> src) => TensorPrimitives.Add(dst, src, dst);
}
