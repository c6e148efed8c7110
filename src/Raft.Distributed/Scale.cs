using System.Numerics;
using System.Runtime.InteropServices;

namespace Raft.Distributed;

/// <summary>SIMD scaling used by the mean reductions.</summary>
internal static class Scale
{
    public static void InPlace(Span<float> data, float factor)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && data.Length >= Vector<float>.Count)
        {
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(data);
            var f = new Vector<float>(factor);
            for (int v = 0; v < vectors.Length; v++) vectors[v] *= f;
            i = vectors.Length * Vector<float>.Count;
        }
        for (; i < data.Length; i++) data[i] *= factor;
    }
}
