using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Raft.Model;

/// <summary>
/// A named weight matrix kept in a 16-bit storage dtype (BF16 or F16, the bits as the checkpoint stores them), for
/// inference-only models: the matmul kernels widen it to fp32 in registers and accumulate in fp32
/// (<see cref="Ops.HalfMatmul"/>), so it is never expanded in memory. Row-major, Hugging Face name and shape.
/// </summary>
public sealed class HalfMatrix
{
    /// <summary>Wraps 16-bit values (<paramref name="dtype"/> BF16 or F16); the length must match the shape.</summary>
    public HalfMatrix(string name, int[] shape, ushort[] bits, SafeTensorDType dtype)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(bits);
        if (dtype == SafeTensorDType.F32)
            throw new ArgumentException($"matrix {name}: dtype F32 is not a 16-bit storage dtype (BF16 or F16).", nameof(dtype));
        long n = 1;
        foreach (int s in shape)
        {
            if (s < 0) throw new ArgumentException($"matrix {name}: shape [{string.Join(", ", shape)}] has a negative dimension.", nameof(shape));
            n *= s;
        }
        if (n != bits.Length)
            throw new ArgumentException($"matrix {name}: shape [{string.Join(", ", shape)}] needs {n} values, got {bits.Length}.", nameof(bits));
        Name = name; Shape = shape; Bits = bits; DType = dtype;
    }

    /// <summary>fp32 values rounded to <paramref name="dtype"/> (round to nearest even; F16 saturates to ±inf beyond its range).</summary>
    public static HalfMatrix FromSingle(Tensor t, SafeTensorDType dtype)
    {
        ArgumentNullException.ThrowIfNull(t);
        var bits = new ushort[t.Length];
        if (dtype == SafeTensorDType.BF16) SafeTensorDTypes.SingleToBFloat16(t.Data, bits);
        else if (dtype == SafeTensorDType.F16)
            for (int i = 0; i < bits.Length; i++) bits[i] = BitConverter.HalfToUInt16Bits((Half)t.Data[i]);
        else throw new ArgumentException($"matrix {t.Name}: dtype {dtype} is not a 16-bit storage dtype (BF16 or F16).", nameof(dtype));
        return new HalfMatrix(t.Name, (int[])t.Shape.Clone(), bits, dtype);
    }

    /// <summary>The Hugging Face name.</summary>
    public string Name { get; }
    /// <summary>The shape, outermost first.</summary>
    public int[] Shape { get; }
    /// <summary>The 16-bit values, row-major.</summary>
    public ushort[] Bits { get; }
    /// <summary>BF16 or F16.</summary>
    public SafeTensorDType DType { get; }
    /// <summary>Number of values.</summary>
    public int Length => Bits.Length;
    /// <summary>The shape as text.</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    /// <summary>Every value widened to fp32 (exact): the same weights as an fp32 tensor.</summary>
    public Tensor ToSingle()
    {
        var data = new float[Bits.Length];
        HalfBits.Widen(Bits, data, DType);
        return new Tensor(Name, (int[])Shape.Clone(), data);
    }
}

/// <summary>Exact widening of BF16 / F16 bits to fp32, scalar and vectorised (the registers the matmul kernels use).</summary>
internal static class HalfBits
{
    /// <summary>One value, exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits, SafeTensorDType dtype) =>
        dtype == SafeTensorDType.BF16 ? BitConverter.Int32BitsToSingle(bits << 16) : (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>A span, exact.</summary>
    public static void Widen(ReadOnlySpan<ushort> src, Span<float> dst, SafeTensorDType dtype)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination is shorter than source.", nameof(dst));
        if (dtype == SafeTensorDType.BF16) { SafeTensorDTypes.BFloat16ToSingle(src, dst); return; }
        for (int i = 0; i < src.Length; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
    }

    // F16 → F32 by bits: the magnitude shifted into binary32's field, times 2^112 (exact for normals and subnormals,
    // without a table or the F16C instructions); exponent 31 (inf, NaN) becomes 255; the sign is put back. The constants
    // are literals (not static readonly fields) so the kernels that inline this carry no class-initialisation check.
    private const uint F16Mag = 0x7FFF, F16InfShifted = 0x7C00u << 13, F32ExpMask = 0x7F800000, Pow2To112Bits = (127u + 112) << 23;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> F16(Vector512<uint> h)
    {
        var mag = (h & Vector512.Create(F16Mag)) << 13;
        var f = (mag.AsSingle() * Vector512.Create(Pow2To112Bits).AsSingle()).AsUInt32();
        f = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(mag, Vector512.Create(F16InfShifted)), mag | Vector512.Create(F32ExpMask), f);
        return (f | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> F16(Vector256<uint> h)
    {
        var mag = (h & Vector256.Create(F16Mag)) << 13;
        var f = (mag.AsSingle() * Vector256.Create(Pow2To112Bits).AsSingle()).AsUInt32();
        f = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(mag, Vector256.Create(F16InfShifted)), mag | Vector256.Create(F32ExpMask), f);
        return (f | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    /// <summary>32 zero-extended 16-bit values at p (vpmovzxwd from memory where AVX-512 is there; the generic Widen of a Vector512 is slower).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector512<uint> Lo, Vector512<uint> Hi) Zx32(ushort* p)
    {
        if (Avx512F.IsSupported)
            return (Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), Avx512F.ConvertToVector512UInt32(Vector256.Load(p + 16)));
        return Vector512.Widen(Vector512.Load(p));
    }

    /// <summary>16 zero-extended 16-bit values at p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector256<uint> Lo, Vector256<uint> Hi) Zx16(ushort* p)
    {
        if (Avx2.IsSupported)
            return (Avx2.ConvertToVector256Int32(Vector128.Load(p)).AsUInt32(), Avx2.ConvertToVector256Int32(Vector128.Load(p + 8)).AsUInt32());
        return Vector256.Widen(Vector256.Load(p));
    }
}

/// <summary>
/// One 16-bit storage format as a type, so that a kernel generic over it (<c>where TF : struct, IHalfFormat</c>) is
/// compiled once per format with the widening inlined and no per-load branch on the dtype: a runtime flag tested
/// inside the loads cost the BF16 decode GEMV 2.8× (13 vs 37 GB/s measured on one core).
/// </summary>
internal interface IHalfFormat
{
    /// <summary>The storage dtype.</summary>
    static abstract SafeTensorDType DType { get; }
    /// <summary>One value, exact.</summary>
    static abstract float ToSingle(ushort bits);
    /// <summary>32 values at p widened into two Vector512 (lower 16, upper 16).</summary>
    static abstract unsafe (Vector512<float> Lo, Vector512<float> Hi) Load32(ushort* p);
    /// <summary>16 values at p widened into two Vector256 (lower 8, upper 8).</summary>
    static abstract unsafe (Vector256<float> Lo, Vector256<float> Hi) Load16(ushort* p);
}

/// <summary>BF16: the upper half of an fp32, widened by a 16-bit shift.</summary>
internal readonly struct Bf16Format : IHalfFormat
{
    public static SafeTensorDType DType => SafeTensorDType.BF16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector512<float> Lo, Vector512<float> Hi) Load32(ushort* p)
    {
        var (lo, hi) = HalfBits.Zx32(p);
        return ((lo << 16).AsSingle(), (hi << 16).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector256<float> Lo, Vector256<float> Hi) Load16(ushort* p)
    {
        var (lo, hi) = HalfBits.Zx16(p);
        return ((lo << 16).AsSingle(), (hi << 16).AsSingle());
    }
}

/// <summary>IEEE binary16, widened exactly by <see cref="HalfBits.F16(Vector512{uint})"/>.</summary>
internal readonly struct F16Format : IHalfFormat
{
    public static SafeTensorDType DType => SafeTensorDType.F16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector512<float> Lo, Vector512<float> Hi) Load32(ushort* p)
    {
        var (lo, hi) = HalfBits.Zx32(p);
        return (HalfBits.F16(lo), HalfBits.F16(hi));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe (Vector256<float> Lo, Vector256<float> Hi) Load16(ushort* p)
    {
        var (lo, hi) = HalfBits.Zx16(p);
        return (HalfBits.F16(lo), HalfBits.F16(hi));
    }
}
