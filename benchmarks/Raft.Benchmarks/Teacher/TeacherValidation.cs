using System.Globalization;
using Raft.Kernels;
using Raft.Teacher;

namespace Raft.Benchmarks.Teacher;

/// <summary>
/// Before anything is timed: the three methods must give the same top-K on the benchmark shapes. Per position the
/// K probabilities are compared in rank order (max |Δp| ≤ 1e-3, so a swap of two near-tied indices does not count)
/// and the share of identical index lists is reported.
/// </summary>
public static class TeacherValidation
{
    /// <summary>Runs the check, prints one line per method; false on a mismatch.</summary>
    public static bool Run(TextWriter log)
    {
        using var p = new TeacherProblem();
        var reference = new EngineTeacher(p).Score();
        using var session = p.OpenCpu();
        var scorer = new TeacherScorer(session, new CpuKernels(Environment.ProcessorCount));
        bool ok = true;
        foreach (var (name, budget) in new[] { ("OnnxScorer", TeacherShapes.UnchunkedBudgetBytes), ("OnnxScorerChunked", TeacherShapes.ChunkedBudgetBytes) })
        {
            var got = scorer.ScoreBatch(p.Contexts, p.Rollouts, new Raft.Kernels.DistillSettings(TeacherShapes.K, TeacherShapes.Temperature), budget);
            double maxDiff = 0;
            int rows = 0, sameRows = 0, k = TeacherShapes.K;
            for (int b = 0; b < reference.Length; b++)
                for (int r = 0; r < got[b].Rows; r++, rows++)
                {
                    bool same = true;
                    for (int j = 0; j < k; j++)
                    {
                        maxDiff = Math.Max(maxDiff, Math.Abs(got[b].Probs[r * k + j] - reference[b].Probs[r * k + j]));
                        same &= got[b].Indices[r * k + j] == reference[b].Indices[r * k + j];
                    }
                    if (same) sameRows++;
                }
            bool pass = maxDiff <= 1e-3;
            ok &= pass;
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"// Validation {name} vs Engine: max |Δp| {maxDiff:E2}, identical index lists {sameRows}/{rows}: {(pass ? "OK" : "MISMATCH")}"));
        }
        return ok;
    }
}
