using Raft.Model.Gguf;

namespace Raft.Gguf.Tests;

/// <summary>
/// The q/k row permutation of the llama export, checked against the two rope conventions written out here in double:
/// Hugging Face's rotate_half (dimension i pairs with i + d/2) and GGML's normal mode (2i pairs with 2i + 1).
/// </summary>
public class RopePermutationTests
{
    private static double[] MatVec(float[] w, int rows, int cols, double[] x)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    private static double[] RopeRotateHalf(double[] q, int heads, int hd, int pos, double theta)
    {
        var o = new double[q.Length];
        int half = hd / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
            {
                double a = pos * Math.Pow(theta, -2.0 * i / hd), c = Math.Cos(a), s = Math.Sin(a);
                double x0 = q[h * hd + i], x1 = q[h * hd + i + half];
                o[h * hd + i] = x0 * c - x1 * s;
                o[h * hd + i + half] = x1 * c + x0 * s;
            }
        return o;
    }

    private static double[] RopeAdjacentPairs(double[] q, int heads, int hd, int pos, double theta)
    {
        var o = new double[q.Length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < hd / 2; i++)
            {
                double a = pos * Math.Pow(theta, -2.0 * i / hd), c = Math.Cos(a), s = Math.Sin(a);
                double x0 = q[h * hd + 2 * i], x1 = q[h * hd + 2 * i + 1];
                o[h * hd + 2 * i] = x0 * c - x1 * s;
                o[h * hd + 2 * i + 1] = x0 * s + x1 * c;
            }
        return o;
    }

    [Theory]
    [InlineData(4, 16, 24, 10000.0)]
    [InlineData(2, 6, 5, 500000.0)]
    [InlineData(3, 2, 7, 100.0)]
    public void Permuted_projection_with_pair_rope_gives_the_permuted_rotate_half_result_and_the_same_scores(int heads, int hd, int cols, double theta)
    {
        var rng = new Random(heads * 1000 + hd * 10 + cols);
        float[] wq = Enumerable.Range(0, heads * hd * cols).Select(_ => (float)Gauss.Next(rng)).ToArray();
        float[] wk = Enumerable.Range(0, heads * hd * cols).Select(_ => (float)Gauss.Next(rng)).ToArray();
        float[] bq = Enumerable.Range(0, heads * hd).Select(_ => (float)Gauss.Next(rng)).ToArray();
        float[] pq = GgufExporter.PermuteHalvesToPairs(wq, heads, hd, cols), pk = GgufExporter.PermuteHalvesToPairs(wk, heads, hd, cols);
        float[] pb = GgufExporter.PermuteHalvesToPairs(bq, heads, hd, 1);
        if (hd >= 4) Assert.NotEqual(wq, pq); // a real reordering; for hd = 2 it is the identity
        for (int pos = 0; pos < 9; pos++)
        {
            double[] x = Enumerable.Range(0, cols).Select(_ => Gauss.Next(rng)).ToArray();
            double[] qHf = MatVec(wq, heads * hd, cols, x), kHf = MatVec(wk, heads * hd, cols, x);
            for (int i = 0; i < qHf.Length; i++) qHf[i] += bq[i];
            double[] qGg = MatVec(pq, heads * hd, cols, x), kGg = MatVec(pk, heads * hd, cols, x);
            for (int i = 0; i < qGg.Length; i++) qGg[i] += pb[i];
            double[] rHf = RopeRotateHalf(qHf, heads, hd, pos, theta), rGg = RopeAdjacentPairs(qGg, heads, hd, pos, theta);
            double[] rkHf = RopeRotateHalf(kHf, heads, hd, pos + 3, theta), rkGg = RopeAdjacentPairs(kGg, heads, hd, pos + 3, theta);
            for (int h = 0; h < heads; h++)
            {
                double sHf = 0, sGg = 0;
                for (int i = 0; i < hd; i++)
                {
                    sHf += rHf[h * hd + i] * rkHf[h * hd + i];
                    sGg += rGg[h * hd + i] * rkGg[h * hd + i];
                    // row 2i + j of the GGML layout is row j·hd/2 + i of Hugging Face's
                    int hfIndex = (i % 2) * (hd / 2) + i / 2;
                    Assert.Equal(rHf[h * hd + hfIndex], rGg[h * hd + i], 9);
                }
                Assert.Equal(sHf, sGg, 8);
            }
        }
    }

    [Fact]
    public void Permutation_refuses_a_shape_that_does_not_match()
    {
        Assert.Contains("even head_dim", Assert.Throws<ArgumentException>(() => GgufExporter.PermuteHalvesToPairs(new float[12], 2, 3, 2)).Message);
        Assert.Contains("needs 32 values", Assert.Throws<ArgumentException>(() => GgufExporter.PermuteHalvesToPairs(new float[31], 2, 4, 4)).Message);
    }
}
