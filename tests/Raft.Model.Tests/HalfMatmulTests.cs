using System.Runtime.Intrinsics;
using Raft.Kernels;
using Raft.Model.Ops;

namespace Raft.Model.Tests;

/// <summary>
/// The 16-bit-weight linear layer (BF16 and F16 as stored, widened in registers, fp32 accumulation) against double loops
/// over the exactly widened weights, on odd sizes and tails, for every SIMD level this machine runs.
/// </summary>
public class HalfMatmulTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (var level in HalfMatmul.Levels)
            foreach (var dtype in new[] { SafeTensorDType.BF16, SafeTensorDType.F16 })
            {
                foreach (int n in new[] { 1, 3, 4, 5, 8, 9, 15, 16, 17 })
                    foreach (int k in new[] { 1, 15, 33, 100 })
                        foreach (int m in new[] { 1, 7, 65 })
                            if ((n + k + m) % 2 == 0 || n == 1 || n == 8 || n == 16)
                                yield return [n, k, m, level, dtype];
                yield return [70, 129, 130, level, dtype];   // two row blocks of the packed path, partial tiles, depth tail
                yield return [2, 1100, 97, level, dtype];    // long rows: many vector steps and a tail
            }
    }

    private static HalfMatrix RandomMatrix(int m, int k, SafeTensorDType dtype, int seed)
    {
        var t = new Tensor("w", [m, k], TestUtil.RandomFloats(m * k, seed));
        return HalfMatrix.FromSingle(t, dtype);
    }

    private static double[] Widened(HalfMatrix w) => Array.ConvertAll(w.Bits, b => w.DType == SafeTensorDType.BF16
        ? (double)BitConverter.Int32BitsToSingle(b << 16) : (double)(float)BitConverter.UInt16BitsToHalf(b));

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesDoubleReference(int n, int k, int m, SimdLevel level, SafeTensorDType dtype)
    {
        var x = TestUtil.RandomFloats(n * k, n * 31 + k + 1000);
        var w = RandomMatrix(m, k, dtype, m * 17 + k + 2000);
        var b = TestUtil.RandomFloats(m, m + 3000);
        double[] xd = Array.ConvertAll(x, v => (double)v), wd = Widened(w), bd = Array.ConvertAll(b, v => (double)v);
        var y = new float[n * m];
        HalfMatmul.Forward(x, w, b, y, n, k, m, threads: 2, simd: level);
        var yr = ReferenceOps.Linear(xd, wd, bd, n, k, m);
        double err = Tolerances.MaxRelError(y, yr);
        Assert.True(err < 1e-5, $"y: {err}");

        // accumulate: y += x·wᵀ (no bias)
        var y2 = (float[])y.Clone();
        HalfMatmul.Forward(x, w, default, y2, n, k, m, threads: 2, accumulate: true, simd: level);
        var yr2 = ReferenceOps.Linear(xd, wd, null, n, k, m);
        for (int i = 0; i < yr2.Length; i++) yr2[i] += yr[i];
        Assert.True(Tolerances.MaxRelError(y2, yr2) < 1e-5, $"y (accumulate): {Tolerances.MaxRelError(y2, yr2)}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SameAsFp32MatmulOfTheWidenedWeightsWithinRounding(int n, int k, int m, SimdLevel level, SafeTensorDType dtype)
    {
        if (n % 3 != 0 && n != 8) return;  // a subset: the fp32 kernel is tested against the reference on its own
        var x = TestUtil.RandomFloats(n * k, n + 7 * k);
        var w = RandomMatrix(m, k, dtype, m + k);
        var y16 = new float[n * m];
        var y32 = new float[n * m];
        HalfMatmul.Forward(x, w, default, y16, n, k, m, threads: 1, simd: level);
        Matmul.Forward(x, w.ToSingle().Data, default, y32, n, k, m, threads: 1, simd: level);
        Assert.True(Tolerances.MaxRelError(y16, y32) < 1e-5, $"{Tolerances.MaxRelError(y16, y32)}");
    }

    [Fact]
    public void SameResultForAnyThreadCount()
    {
        foreach (int n in new[] { 1, 5, 40 })
        {
            int k = 300, m = 150;
            var x = TestUtil.RandomFloats(n * k, 1);
            var w = RandomMatrix(m, k, SafeTensorDType.BF16, 2);
            var y1 = new float[n * m]; var y3 = new float[n * m];
            HalfMatmul.Forward(x, w, default, y1, n, k, m, threads: 1);
            HalfMatmul.Forward(x, w, default, y3, n, k, m, threads: 3);
            Assert.Equal(y1, y3);
        }
    }

    [Fact]
    public void VectorF16WideningIsExactForEveryBitPattern()
    {
        // every one of the 65,536 F16 values (zeros, subnormals, normals, ±inf, NaNs) through the register widening
        var expected = new float[65536];
        for (int i = 0; i < 65536; i++) expected[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        bool any = false;
        if (Vector512.IsHardwareAccelerated)
        {
            any = true;
            for (int i = 0; i < 65536; i += 16)
            {
                var h = Vector512.Create(Enumerable.Range(i, 16).Select(v => (uint)v).ToArray());
                var f = HalfBits.F16(h);
                for (int j = 0; j < 16; j++) AssertSame(expected[i + j], f[j], i + j);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            any = true;
            for (int i = 0; i < 65536; i += 8)
            {
                var h = Vector256.Create(Enumerable.Range(i, 8).Select(v => (uint)v).ToArray());
                var f = HalfBits.F16(h);
                for (int j = 0; j < 8; j++) AssertSame(expected[i + j], f[j], i + j);
            }
        }
        Assert.True(any, "no vector level to test on this CPU");
    }

    private static void AssertSame(float expected, float got, int bits)
    {
        if (float.IsNaN(expected)) Assert.True(float.IsNaN(got), $"F16 0x{bits:X4}: expected NaN, got {got}");
        else Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(got),
            $"F16 0x{bits:X4}: expected {expected}, got {got}");
    }

    public static IEnumerable<object[]> BackwardCases()
    {
        foreach (var level in HalfMatmul.Levels)
            foreach (var dtype in new[] { SafeTensorDType.BF16, SafeTensorDType.F16 })
            {
                foreach (var (n, k, m) in new[] { (1, 1, 1), (3, 15, 7), (4, 16, 17), (5, 33, 65), (9, 100, 3), (17, 129, 40) })
                    yield return [n, k, m, level, dtype];
                yield return [70, 131, 300, level, dtype];   // two row blocks, two column tiles with a tail, two depth blocks with a tail
            }
    }

    [Theory]
    [MemberData(nameof(BackwardCases))]
    public void BackwardInputMatchesDoubleReferenceAndTheFp32KernelOverTheWidenedWeights(int n, int k, int m, SimdLevel level, SafeTensorDType dtype)
    {
        // dx[n, k] = dy[n, m] · W[m, k], W 16-bit
        var dy = TestUtil.RandomFloats(n * m, n * 13 + m + 4000);
        var w = RandomMatrix(m, k, dtype, m * 7 + k + 5000);
        var wd = Widened(w);
        var dx = new float[n * k];
        HalfMatmul.BackwardInput(dy, w, dx, n, k, m, threads: 2, simd: level);
        var dxr = new double[n * k];
        ReferenceOps.LinearBackward(Array.ConvertAll(dy, v => (double)v), new double[n * k], wd, dxr, null, null, n, k, m);
        Assert.True(Tolerances.MaxRelError(dx, dxr) < 1e-5, $"dx: {Tolerances.MaxRelError(dx, dxr)}");

        // the same sums as the fp32 kernel on the widened weights, bit for bit
        var dxf = new float[n * k];
        Matmul.Backward(dy, new float[n * k], Array.ConvertAll(wd, v => (float)v), dxf, default, default, n, k, m, threads: 2, simd: level);
        Assert.Equal(dxf, dx);

        // accumulate: dx += dy · W
        var acc = TestUtil.RandomFloats(n * k, 6000 + n);
        var expected = new double[n * k];
        for (int i = 0; i < expected.Length; i++) expected[i] = acc[i] + dxr[i];
        HalfMatmul.BackwardInput(dy, w, acc, n, k, m, threads: 1, accumulate: true, simd: level);
        Assert.True(Tolerances.MaxRelError(acc, expected) < 1e-5, $"dx (accumulate): {Tolerances.MaxRelError(acc, expected)}");
    }

    [Fact]
    public void WrongShapeIsAnErrorNamingTheArgument()
    {
        var w = new HalfMatrix("layer.w", [2, 3], new ushort[6], SafeTensorDType.BF16);
        var e = Assert.Throws<ArgumentException>(() => HalfMatmul.Forward(new float[6], w, default, new float[4], 2, 3, 3, 1));
        Assert.Equal("w", e.ParamName);
        Assert.Contains("layer.w", e.Message);
        e = Assert.Throws<ArgumentException>(() => HalfMatmul.BackwardInput(new float[6], w, new float[6], 2, 3, 3, 1));
        Assert.Equal("w", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => HalfMatmul.BackwardInput(new float[3], w, new float[6], 2, 3, 2, 1));
        Assert.Equal("dy", e.ParamName);
        Assert.Throws<ArgumentException>(() => new HalfMatrix("m", [2, 2], new ushort[4], SafeTensorDType.F32));
    }
}
