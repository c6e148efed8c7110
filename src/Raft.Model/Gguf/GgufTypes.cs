namespace Raft.Model.Gguf;

/// <summary>The metadata value types of GGUF v3 (the numbers the file stores).</summary>
public enum GgufValueType : uint
{
    /// <summary>8-bit unsigned integer.</summary>
    UInt8 = 0,
    /// <summary>8-bit signed integer.</summary>
    Int8 = 1,
    /// <summary>16-bit unsigned integer.</summary>
    UInt16 = 2,
    /// <summary>16-bit signed integer.</summary>
    Int16 = 3,
    /// <summary>32-bit unsigned integer.</summary>
    UInt32 = 4,
    /// <summary>32-bit signed integer.</summary>
    Int32 = 5,
    /// <summary>IEEE 754 binary32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>A UTF-8 string: u64 length, then the bytes (no terminator).</summary>
    String = 8,
    /// <summary>An array: u32 element type, u64 count, then the elements.</summary>
    Array = 9,
    /// <summary>64-bit unsigned integer.</summary>
    UInt64 = 10,
    /// <summary>64-bit signed integer.</summary>
    Int64 = 11,
    /// <summary>IEEE 754 binary64.</summary>
    Float64 = 12,
}

/// <summary>The tensor element types this engine writes and reads (ggml's type numbers).</summary>
public enum GgmlType : uint
{
    /// <summary>IEEE 754 binary32.</summary>
    F32 = 0,
    /// <summary>IEEE 754 binary16.</summary>
    F16 = 1,
    /// <summary>bfloat16 (the upper half of a binary32).</summary>
    BF16 = 30,
}

/// <summary>
/// One metadata value: its <see cref="Type"/> and the value as a .NET object — <c>byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double</c> for the scalar types, and for <see cref="GgufValueType.Array"/> a typed
/// array of the <see cref="ElementType"/>'s .NET type (e.g. <c>string[]</c>, <c>int[]</c>, <c>float[]</c>).
/// </summary>
public sealed record GgufValue
{
    private GgufValue(GgufValueType type, object value, GgufValueType elementType)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    /// <summary>The value's type.</summary>
    public GgufValueType Type { get; }
    /// <summary>The value (see the type's remarks).</summary>
    public object Value { get; }
    /// <summary>The element type of an array (meaningless for scalars).</summary>
    public GgufValueType ElementType { get; }

    /// <summary>A u32.</summary>
    public static GgufValue U32(uint v) => new(GgufValueType.UInt32, v, default);
    /// <summary>A u32 from a non-negative int; throws when it is negative.</summary>
    public static GgufValue U32(int v) => v >= 0 ? U32((uint)v) : throw new ArgumentOutOfRangeException(nameof(v), v, "a u32 value must be >= 0.");
    /// <summary>An i32.</summary>
    public static GgufValue I32(int v) => new(GgufValueType.Int32, v, default);
    /// <summary>An f32.</summary>
    public static GgufValue F32(float v) => new(GgufValueType.Float32, v, default);
    /// <summary>A bool.</summary>
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v, default);
    /// <summary>A string.</summary>
    public static GgufValue Str(string v) => new(GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)), default);
    /// <summary>A u64.</summary>
    public static GgufValue U64(ulong v) => new(GgufValueType.UInt64, v, default);
    /// <summary>An array of strings.</summary>
    public static GgufValue Strings(string[] v) => new(GgufValueType.Array, v ?? throw new ArgumentNullException(nameof(v)), GgufValueType.String);
    /// <summary>An array of i32.</summary>
    public static GgufValue Int32s(int[] v) => new(GgufValueType.Array, v ?? throw new ArgumentNullException(nameof(v)), GgufValueType.Int32);
    /// <summary>An array of f32.</summary>
    public static GgufValue Float32s(float[] v) => new(GgufValueType.Array, v ?? throw new ArgumentNullException(nameof(v)), GgufValueType.Float32);

    /// <summary>Any scalar of a type the reader met (used by <see cref="GgufReader"/>).</summary>
    internal static GgufValue Scalar(GgufValueType type, object value) => new(type, value, default);
    /// <summary>An array of a type the reader met.</summary>
    internal static GgufValue ArrayOf(GgufValueType elementType, Array value) => new(GgufValueType.Array, value, elementType);

    /// <summary>The value as a string; throws naming the actual type when it is not one.</summary>
    public string AsString() => Value as string ?? throw new InvalidCastException($"GGUF value is {Describe()}, not a string.");

    /// <summary>Any integer scalar as a long; throws when the value is not an integer.</summary>
    public long AsInteger() => Value switch
    {
        byte b => b, sbyte s => s, ushort us => us, short sh => sh, uint u => u, int i => i, ulong ul => checked((long)ul), long l => l,
        _ => throw new InvalidCastException($"GGUF value is {Describe()}, not an integer."),
    };

    /// <summary>A float scalar (f32 or f64) as a double.</summary>
    public double AsFloat() => Value switch
    {
        float f => f, double d => d,
        _ => throw new InvalidCastException($"GGUF value is {Describe()}, not a float."),
    };

    /// <summary>The type as text, e.g. "UInt32" or "Array of String".</summary>
    public string Describe() => Type == GgufValueType.Array ? $"Array of {ElementType}" : Type.ToString();
}

/// <summary>Size helpers of <see cref="GgmlType"/>.</summary>
public static class GgmlTypes
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a GGML type this engine handles (F32, F16, BF16)."),
    };

    /// <summary>Whether <paramref name="raw"/> is a type this engine handles.</summary>
    public static bool IsKnown(uint raw) => raw is (uint)GgmlType.F32 or (uint)GgmlType.F16 or (uint)GgmlType.BF16;
}
