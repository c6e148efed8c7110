using System.Diagnostics;
using System.Text;
using Raft.Kernels;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// Checks, on the benchmark shapes and inputs, that every measured method computes the same thing: each
/// loss is compared with the double-precision reference (<see cref="ReferenceKernels"/>, the spec) and must
/// agree to <see cref="Tolerance"/> relative; each gradient is compared with the reference's, as
/// max |g − g_ref| / max |g_ref|. The pristine student is used by every method (nothing runs in place here).
/// </summary>
public static class DistillValidation
{
    /// <summary>Largest relative loss difference accepted.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>The table printed by the last <see cref="Run"/> (markdown), or null.</summary>
    public static string? LastReport { get; private set; }

    /// <summary>Runs every shape; prints a markdown table; returns false if any method disagrees.</summary>
    public static bool Run(TextWriter log)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Validation (rows = {DistillShapes.Rows}, τ = {DistillShapes.Temperature}; loss vs the double-precision reference, tolerance {Tolerance:0e0} relative; gradient: max|g − g_ref| / max|g_ref|):");
        sb.AppendLine();
        sb.AppendLine("| V | K | reference loss | method | loss | rel. loss diff | rel. grad diff | ok | one call (s) |");
        sb.AppendLine("|---:|---:|---:|---|---:|---:|---:|:-:|---:|");
        log.Write(sb.ToString());
        bool allOk = true;
        foreach (int v in DistillShapes.Vocabs)
            foreach (int k in DistillShapes.TopKs)
            {
                var p = new DistillProblem(DistillShapes.Rows, v, k, DistillShapes.Temperature);
                var gRef = p.NewTouchedBuffer();
                var g = p.NewTouchedBuffer();
                var sw = Stopwatch.StartNew();
                double lRef = ReferenceKernels.Instance.Distill(p.Student, p.Rows, v, p.Indices, p.Probs,
                    new DistillSettings(k, p.Temperature), default, gRef).Loss;
                double gRefMax = MaxAbs(gRef);
                log.WriteLine($"<!-- V={v} K={k}: reference {sw.Elapsed.TotalSeconds:0.0} s -->");

                void Check(string method, Func<double> run)
                {
                    g.AsSpan().Clear();
                    var t = Stopwatch.StartNew();
                    double l = run();
                    double seconds = t.Elapsed.TotalSeconds;
                    double dl = Math.Abs(l - lRef) / Math.Abs(lRef);
                    double dg = MaxAbsDiff(g, gRef) / gRefMax;
                    bool ok = dl <= Tolerance && double.IsFinite(l) && dg <= 1e-3;
                    allOk &= ok;
                    string line = $"| {v:N0} | {k} | {lRef:0.000000} | {method} | {l:0.000000} | {dl:0.0e0} | {dg:0.0e0} | {(ok ? "✓" : "✗")} | {seconds:0.000} |";
                    sb.AppendLine(line);
                    log.WriteLine(line);
                }

                var kernels = FusedKernel.Create();
                Check($"Fused ({kernels.Name})", () => FusedKernel.Run(kernels, p, g));
                Check("Scalar", () => ScalarDistill.Run(p.Student, p.Rows, v, p.Indices, p.Probs, k, p.Temperature, g));
                using (var ort = new OnnxDistill(p, g)) Check("OnnxRuntime", ort.Run);
                using (var torch = new TorchDistill(p)) Check("TorchSharp", () => torch.Run(g));
                GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
            }
        sb.AppendLine();
        sb.AppendLine(allOk ? "All methods agree." : "**Some methods disagree (✗).**");
        log.WriteLine(allOk ? "All methods agree." : "SOME METHODS DISAGREE.");
        LastReport = sb.ToString();
        return allOk;
    }

    private static double MaxAbs(float[] a)
    {
        float m = 0;
        foreach (float x in a) m = Math.Max(m, Math.Abs(x));
        return m;
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        float m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }
}
