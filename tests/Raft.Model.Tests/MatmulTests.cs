using Raft.Kernels;
using Raft.Model.Ops;

namespace Raft.Model.Tests;

/// <summary>The fast linear layer against naive double loops, on odd sizes and every SIMD level this machine runs.</summary>
public class MatmulTests
{
    public static IEnumerable<object[]> Sizes()
    {
        int[] dims = [1, 7, 33, 129];
        foreach (var level in Levels())
        {
            foreach (int n in dims)
                foreach (int k in dims)
                    foreach (int m in new[] { 1, 7, 33, 129 })
                        if ((n + k + m) % 3 == 0 || n == 129 || k == 1)
                            yield return [n, k, m, level];
            yield return [70, 1100, 65, level];   // two reduction blocks, partial row/column tiles
            yield return [300, 40, 270, level];   // the backward's depth blocks (n and m over 256)
            yield return [520, 33, 600, level];   // 256-row packed tiles, the last one partial
        }
    }

    private static IEnumerable<SimdLevel> Levels()
    {
        yield return SimdLevel.Scalar;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated) yield return SimdLevel.Vector256;
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) yield return SimdLevel.Vector512;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void ForwardAndBackwardMatchNaive(int n, int k, int m, SimdLevel level)
    {
        var x = TestUtil.RandomFloats(n * k, n * 31 + k);
        var w = TestUtil.RandomFloats(m * k, m * 17 + k);
        var b = TestUtil.RandomFloats(m, m);
        var y = new float[n * m];
        Matmul.Forward(x, w, b, y, n, k, m, threads: 2, simd: level);
        double[] xd = D(x), wd = D(w), bd = D(b);
        var yr = ReferenceOps.Linear(xd, wd, bd, n, k, m);
        Assert.True(Tolerances.MaxRelError(y, yr) < 1e-5, $"y: {Tolerances.MaxRelError(y, yr)}");

        // accumulate mode adds to what is there
        var y2 = (float[])y.Clone();
        Matmul.Forward(x, w, default, y2, n, k, m, threads: 2, accumulate: true, simd: level);
        var yr2 = ReferenceOps.Linear(xd, wd, null, n, k, m);
        for (int i = 0; i < yr2.Length; i++) yr2[i] += yr[i];
        Assert.True(Tolerances.MaxRelError(y2, yr2) < 1e-5);

        var dy = TestUtil.RandomFloats(n * m, 5);
        var dx = new float[n * k];
        var dw = TestUtil.RandomFloats(m * k, 6);   // accumulated into
        var db = TestUtil.RandomFloats(m, 7);
        double[] dxr = new double[n * k], dwr = D(dw), dbr = D(db);
        Matmul.Backward(dy, x, w, dx, dw, db, n, k, m, threads: 2, simd: level);
        ReferenceOps.LinearBackward(D(dy), xd, wd, dxr, dwr, dbr, n, k, m);
        Assert.True(Tolerances.MaxRelError(dx, dxr) < 1e-5, $"dx: {Tolerances.MaxRelError(dx, dxr)}");
        Assert.True(Tolerances.MaxRelError(dw, dwr) < 1e-5, $"dw: {Tolerances.MaxRelError(dw, dwr)}");
        Assert.True(Tolerances.MaxRelError(db, dbr) < 1e-5, $"db: {Tolerances.MaxRelError(db, dbr)}");
    }

    [Fact]
    public void SameResultForAnyThreadCount()
    {
        int n = 97, k = 300, m = 150;
        var x = TestUtil.RandomFloats(n * k, 1); var w = TestUtil.RandomFloats(m * k, 2);
        var y1 = new float[n * m]; var y3 = new float[n * m];
        Matmul.Forward(x, w, default, y1, n, k, m, threads: 1);
        Matmul.Forward(x, w, default, y3, n, k, m, threads: 3);
        Assert.Equal(y1, y3);
    }

    [Fact]
    public void WrongShapeIsAnError()
    {
        var e = Assert.Throws<ArgumentException>(() => Matmul.Forward(new float[6], new float[5], default, new float[4], 2, 3, 2, 1));
        Assert.Equal("w", e.ParamName);
    }

    private static double[] D(float[] a) => Array.ConvertAll(a, v => (double)v);
}
