using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Numerics.Tensors;

namespace Raft.Model;

/// <summary>The element types this engine reads from and writes to safetensors files (all become fp32 in memory).</summary>
public enum SafeTensorDType
{
    /// <summary>IEEE 754 binary32 ("F32").</summary>
    F32,
    /// <summary>IEEE 754 binary16 ("F16").</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of a binary32 ("BF16").</summary>
    BF16,
}

/// <summary>Names, sizes and fp32 conversions of safetensors element types.</summary>
public static class SafeTensorDTypes
{
    /// <summary>The name the safetensors header uses ("F32", "F16", "BF16").</summary>
    public static string HeaderName(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F32 => "F32",
        SafeTensorDType.F16 => "F16",
        SafeTensorDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Bytes per element.</summary>
    public static int Size(this SafeTensorDType dtype) => dtype == SafeTensorDType.F32 ? 4 : 2;

    /// <summary>Parses a header dtype this engine can read; false for any other (including valid safetensors types such as I64).</summary>
    public static bool TryParse(string name, out SafeTensorDType dtype)
    {
        switch (name)
        {
            case "F32": dtype = SafeTensorDType.F32; return true;
            case "F16": dtype = SafeTensorDType.F16; return true;
            case "BF16": dtype = SafeTensorDType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>Bytes per element of any dtype the safetensors format defines, or 0 when the name is not one of them.</summary>
    internal static int SizeOfHeaderName(string name) => name switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" or "F8_E8M0" => 1,
        _ => 0,
    };

    /// <summary>The names of the in-memory weight dtypes an option takes (<c>weights_dtype</c>): fp32, bf16, fp16.</summary>
    public const string WeightsDTypeChoices = "fp32, bf16 or fp16";

    /// <summary>
    /// Parses an in-memory weights dtype option: <c>fp32</c> (widen everything, the default), <c>bf16</c> or <c>fp16</c>
    /// (keep the matrices in 16 bits, inference only), case-insensitive; anything else is an <see cref="ArgumentException"/>
    /// naming <paramref name="key"/> and the value.
    /// </summary>
    public static SafeTensorDType ParseWeightsDType(string? text, string key) => text?.ToLowerInvariant() switch
    {
        "fp32" or "f32" or "float32" => SafeTensorDType.F32,
        "bf16" or "bfloat16" => SafeTensorDType.BF16,
        "fp16" or "f16" or "float16" => SafeTensorDType.F16,
        _ => throw new ArgumentException($"{key} = {(text is null ? "null" : $"\"{text}\"")}: must be {WeightsDTypeChoices}.", key),
    };

    /// <summary>The option name of a weights dtype: fp32, bf16, fp16.</summary>
    public static string WeightsDTypeName(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F32 => "fp32",
        SafeTensorDType.BF16 => "bf16",
        SafeTensorDType.F16 => "fp16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>bfloat16 bits → fp32: the 16 bits become the upper half of the binary32 (exact).</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>fp32 → bfloat16 bits, rounding to nearest even; NaN stays a (quiet) NaN.</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        uint rounding = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>Little-endian raw elements of <paramref name="dtype"/> → fp32 (<paramref name="destination"/> holds one float per element).</summary>
    public static void ToSingle(SafeTensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (source.Length != (long)destination.Length * dtype.Size())
            throw new ArgumentException($"source holds {source.Length} bytes, {destination.Length} {dtype.HeaderName()} values need {(long)destination.Length * dtype.Size()}.", nameof(source));
        switch (dtype)
        {
            case SafeTensorDType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case SafeTensorDType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case SafeTensorDType.BF16:
                BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }

    /// <summary>bfloat16 bits → fp32, vectorised (widen to 32 bits, shift left 16).</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is shorter than source.", nameof(destination));
        int i = 0;
        ref ushort s = ref MemoryMarshal.GetReference(source);
        ref float d = ref MemoryMarshal.GetReference(destination);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= source.Length - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var v = Vector256.LoadUnsafe(ref s, (nuint)i);
                var (lo, hi) = Vector256.Widen(v);
                Vector256.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector256.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + Vector256<uint>.Count));
            }
        }
        for (; i < source.Length; i++) Unsafe.Add(ref d, i) = BFloat16ToSingle(Unsafe.Add(ref s, i));
    }

    /// <summary>
    /// fp32 → bfloat16 bits (round to nearest even; NaN stays a quiet NaN), vectorised: bit for bit the scalar
    /// <see cref="SingleToBFloat16(float)"/> (mixed precision re-rounds every weight with it after each optimizer step).
    /// </summary>
    public static void SingleToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is shorter than source.", nameof(destination));
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref uint s = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(source));
            ref ushort d = ref MemoryMarshal.GetReference(destination);
            for (; i <= source.Length - 2 * Vector256<uint>.Count; i += 2 * Vector256<uint>.Count)
            {
                var lo = Round(Vector256.LoadUnsafe(ref s, (nuint)i));
                var hi = Round(Vector256.LoadUnsafe(ref s, (nuint)(i + Vector256<uint>.Count)));
                Vector256.Narrow(lo, hi).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < source.Length; i++) destination[i] = SingleToBFloat16(source[i]);

        static Vector256<uint> Round(Vector256<uint> bits)
        {
            var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
            var nan = Vector256.GreaterThan(bits & Vector256.Create(0x7FFFFFFFu), Vector256.Create(0x7F800000u));
            return Vector256.ConditionalSelect(nan, (bits >> 16) | Vector256.Create(0x0040u), rounded);
        }
    }
}
