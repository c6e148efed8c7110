using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Raft.Benchmarks.Training;

/// <summary>
/// Checks, before anything is timed, that the engine and the libtorch mirror compute the same model on the
/// benchmark's own weights and tokens: the logits must agree to <see cref="LogitsTolerance"/> as
/// max|l_torch − l_engine| / max|l_engine|; then one forward + loss + backward of each: the losses must agree
/// to <see cref="LogitsTolerance"/> relative and every parameter's gradient to <see cref="GradientTolerance"/> as
/// max|g_torch − g_engine| / max|g_engine| (the worst tensor is reported).
/// </summary>
public static class TrainingValidation
{
    /// <summary>Largest relative logits (and loss) difference accepted.</summary>
    public const double LogitsTolerance = 1e-4;
    /// <summary>Largest relative gradient difference accepted (per tensor, against its largest magnitude).</summary>
    public const double GradientTolerance = 1e-3;

    /// <summary>The table printed by the last <see cref="Run"/> (markdown), or null.</summary>
    public static string? LastReport { get; private set; }

    /// <summary>Validates every case; prints a markdown table; returns false if any disagrees.</summary>
    public static bool Run(TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"Validation: engine LlamaModel vs the TorchSharp mirror on the same weights and tokens (logits and loss: tolerance {LogitsTolerance:0e0} relative, max|Δ| / max|engine|; gradients after one forward+backward: {GradientTolerance:0e0} per tensor, worst tensor shown):");
        sb.AppendLine();
        sb.AppendLine("| case | max abs logit | logits rel. diff | engine loss | torch loss | loss rel. diff | grads rel. diff (worst tensor) | ok | time (s) |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---|:-:|---:|");
        log.Write(sb.ToString());
        bool allOk = true;
        foreach (string name in TrainingShapes.CaseNames)
        {
            var sw = Stopwatch.StartNew();
            var p = new TrainingProblem(TrainingShapes.Get(name));
            var engine = new EngineTrainer(p);
            using var torchModel = new TorchLlama(p);
            float[] le = engine.Logits(), lt = torchModel.Logits();
            if (le.Length != lt.Length) throw new InvalidOperationException($"logits lengths differ: engine {le.Length}, torch {lt.Length}.");
            double maxE = 0, maxD = 0;
            for (int i = 0; i < le.Length; i++)
            {
                maxE = Math.Max(maxE, Math.Abs(le[i]));
                maxD = Math.Max(maxD, Math.Abs((double)lt[i] - le[i]));
            }
            double logitsRel = maxD / maxE;
            double lossE = engine.ForwardBackward(), lossT = torchModel.ForwardBackward();
            double lossRel = Math.Abs(lossT - lossE) / Math.Abs(lossE);
            double worst = 0;
            string worstName = "";
            foreach (var g in engine.Gradients.Tensors)
            {
                float[] gt = torchModel.Gradient(g.Name);
                double gm = 0, gd = 0;
                for (int i = 0; i < g.Data.Length; i++)
                {
                    gm = Math.Max(gm, Math.Abs(g.Data[i]));
                    gd = Math.Max(gd, Math.Abs((double)gt[i] - g.Data[i]));
                }
                double rel = gm > 0 ? gd / gm : gd;
                if (!(rel <= worst)) { worst = rel; worstName = g.Name; }
            }
            bool ok = logitsRel <= LogitsTolerance && lossRel <= LogitsTolerance && worst <= GradientTolerance;
            allOk &= ok;
            string row = $"| {name} | {maxE.ToString("0.000", inv)} | {logitsRel.ToString("0.0e0", inv)} | {lossE.ToString("0.000000", inv)} | " +
                $"{lossT.ToString("0.000000", inv)} | {lossRel.ToString("0.0e0", inv)} | {worst.ToString("0.0e0", inv)} ({worstName}) | {(ok ? "yes" : "**NO**")} | {sw.Elapsed.TotalSeconds.ToString("0.0", inv)} |";
            sb.AppendLine(row);
            log.WriteLine(row);
        }
        log.WriteLine(allOk
            ? "// Training validation: the engine and TorchSharp compute the same model (apples to apples)."
            : "// TRAINING VALIDATION FAILED: the engine and the TorchSharp mirror disagree; timings would not compare the same computation.");
        LastReport = sb.ToString();
        return allOk;
    }
}
