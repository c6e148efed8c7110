using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Raft.Teacher;

/// <summary>
/// fp16 / bf16 → fp32 at the teacher's boundary (logits of a half-precision export, read before the top-K). Both
/// conversions are exact (every fp16 and bf16 value is an fp32 value); the scalar <see cref="ReferenceToSingle"/>
/// (through double) is the specification the fast paths are tested against.
/// </summary>
public static class ElementConvert
{
    /// <summary>Bytes per element of a float type.</summary>
    public static int SizeOf(TensorElementType type) => type switch
    {
        TensorElementType.Float => 4,
        TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "only Float, Float16 and BFloat16 are converted."),
    };

    /// <summary>
    /// Converts <paramref name="source"/> (raw little-endian elements of <paramref name="type"/>: Float16 or BFloat16)
    /// into <paramref name="destination"/> (one float per element).
    /// </summary>
    public static void ToSingle(ReadOnlySpan<byte> source, TensorElementType type, Span<float> destination)
    {
        if (type is not (TensorElementType.Float16 or TensorElementType.BFloat16))
            throw new ArgumentOutOfRangeException(nameof(type), type, "only Float16 and BFloat16 are converted.");
        if (source.Length != destination.Length * 2L)
            throw new ArgumentException($"source has {source.Length} bytes, destination {destination.Length} floats; {type} needs 2 bytes per float.", nameof(source));
        if (type == TensorElementType.Float16)
        {
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
            return;
        }
        // bf16 is the upper half of an fp32: widen the 16 bits, shift them into place
        var bits = MemoryMarshal.Cast<byte, ushort>(source);
        var dst = MemoryMarshal.Cast<float, uint>(destination);
        for (int i = 0; i < bits.Length; i++) dst[i] = (uint)bits[i] << 16;
    }

    /// <summary>The specification: one element, decoded field by field (sign, exponent, mantissa) in double precision.</summary>
    public static float ReferenceToSingle(ushort bits, TensorElementType type)
    {
        int expBits, manBits, bias;
        if (type == TensorElementType.Float16) { expBits = 5; manBits = 10; bias = 15; }
        else if (type == TensorElementType.BFloat16) { expBits = 8; manBits = 7; bias = 127; }
        else throw new ArgumentOutOfRangeException(nameof(type), type, "only Float16 and BFloat16 are converted.");
        int sign = bits >> 15;
        int exp = (bits >> manBits) & ((1 << expBits) - 1);
        int man = bits & ((1 << manBits) - 1);
        double value;
        if (exp == (1 << expBits) - 1) value = man == 0 ? double.PositiveInfinity : double.NaN;
        else if (exp == 0) value = man * Math.Pow(2, 1 - bias - manBits);
        else value = (1 + man / Math.Pow(2, manBits)) * Math.Pow(2, exp - bias);
        return (float)(sign == 1 ? -value : value);
    }
}
