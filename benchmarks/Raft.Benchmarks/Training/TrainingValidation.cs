using System.Diagnostics;
using System.Globalization;
using System.Text;
using Raft.Model;

namespace Raft.Benchmarks.Training;

/// <summary>
/// Checks, before anything is timed, that the engine and the libtorch mirror compute the same model on the
/// benchmark's own weights and tokens: the logits must agree to <see cref="LogitsTolerance"/> as
/// max|l_torch − l_engine| / max|l_engine|; then one forward + loss + backward of each: the losses must agree
/// to <see cref="LogitsTolerance"/> relative and every parameter's gradient to <see cref="GradientTolerance"/> as
/// max|g_torch − g_engine| / max|g_engine| (the worst tensor is reported). Finally each implementation's
/// optimizer runs two AdamW updates (the second after a fresh forward + backward), and every parameter after
/// each update is compared with PyTorch's AdamW formula evaluated in fp64 on that implementation's own
/// gradients and previous parameters (the benchmark's hyper-parameters; decay per <see cref="AdamW.IsDecayed"/>):
/// the worst error in units of 2⁻²³·(|p_ref| + |Δp_ref|) (fp32 ulps) must stay within <see cref="OptimizerUlps"/>.
/// Two steps so β1, β2 and the bias corrections matter; a missing or extra weight decay is ~84 ulps.
/// </summary>
public static class TrainingValidation
{
    /// <summary>Largest relative logits (and loss) difference accepted.</summary>
    public const double LogitsTolerance = 1e-4;
    /// <summary>Largest relative gradient difference accepted (per tensor, against its largest magnitude).</summary>
    public const double GradientTolerance = 1e-3;

    /// <summary>Largest optimizer error accepted, in fp32 ulps of the parameter (see the class remarks).</summary>
    public const double OptimizerUlps = 32;

    /// <summary>The table printed by the last <see cref="Run"/> (markdown), or null.</summary>
    public static string? LastReport { get; private set; }

    /// <summary>Validates every case; prints a markdown table; returns false if any disagrees.</summary>
    public static bool Run(TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"Validation: engine LlamaModel vs the TorchSharp mirror on the same weights and tokens (logits and loss: tolerance {LogitsTolerance:0e0} relative, max|Δ| / max|engine|; gradients after one forward+backward: {GradientTolerance:0e0} per tensor, worst tensor shown; AdamW: two updates of each implementation vs PyTorch's AdamW formula in fp64 on that implementation's own gradients, worst error in fp32 ulps of |p_ref| + |Δp_ref|, tolerance {OptimizerUlps:0}):");
        sb.AppendLine();
        sb.AppendLine("| case | max abs logit | logits rel. diff | engine loss | torch loss | loss rel. diff | grads rel. diff (worst tensor) | AdamW ulps engine / torch (2 steps) | ok | time (s) |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---|---:|:-:|---:|");
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
            double ulpE = CheckOptimizer(p, n => (float[])engine.Gradients[n].Data.Clone(), n => (float[])engine.Model.Parameters[n].Data.Clone(),
                () => engine.ForwardBackward(), engine.Update);
            double ulpT = CheckOptimizer(p, torchModel.Gradient, torchModel.ParameterData, () => torchModel.ForwardBackward(), torchModel.Update);
            bool ok = logitsRel <= LogitsTolerance && lossRel <= LogitsTolerance && worst <= GradientTolerance
                && ulpE <= OptimizerUlps && ulpT <= OptimizerUlps;
            allOk &= ok;
            string row = $"| {name} | {maxE.ToString("0.000", inv)} | {logitsRel.ToString("0.0e0", inv)} | {lossE.ToString("0.000000", inv)} | " +
                $"{lossT.ToString("0.000000", inv)} | {lossRel.ToString("0.0e0", inv)} | {worst.ToString("0.0e0", inv)} ({worstName}) | {ulpE.ToString("0.0", inv)} / {ulpT.ToString("0.0", inv)} | {(ok ? "yes" : "**NO**")} | {sw.Elapsed.TotalSeconds.ToString("0.0", inv)} |";
            sb.AppendLine(row);
            log.WriteLine(row);
        }
        log.WriteLine(allOk
            ? "// Training validation: the engine and TorchSharp compute the same model (apples to apples)."
            : "// TRAINING VALIDATION FAILED: the engine and the TorchSharp mirror disagree; timings would not compare the same computation.");
        LastReport = sb.ToString();
        return allOk;
    }

    /// <summary>
    /// Runs two updates of one implementation, whose gradients are already computed (step 1), and returns the
    /// worst parameter error against the fp64 AdamW formula in fp32 ulps of (|p_ref| + |Δp_ref|).
    /// </summary>
    private static double CheckOptimizer(TrainingProblem p, Func<string, float[]> grad, Func<string, float[]> param,
        Action forwardBackward, Action update)
    {
        double lr = TrainingShapes.LearningRate, b1 = TrainingShapes.Beta1, b2 = TrainingShapes.Beta2, eps = TrainingShapes.Epsilon;
        var tensors = p.InitialWeights.Tensors;
        var g1 = tensors.ToDictionary(t => t.Name, t => grad(t.Name));
        update();
        var p1 = tensors.ToDictionary(t => t.Name, t => param(t.Name));
        forwardBackward();
        var g2 = tensors.ToDictionary(t => t.Name, t => grad(t.Name));
        update();
        double worst = 0;
        foreach (var t in tensors)
        {
            double decay = 1 - lr * (AdamW.IsDecayed(t) ? TrainingShapes.WeightDecay : 0);
            float[] p0 = t.Data, a1 = p1[t.Name], a2 = param(t.Name), ga = g1[t.Name], gb = g2[t.Name];
            for (int i = 0; i < p0.Length; i++)
            {
                double m1 = (1 - b1) * ga[i], v1 = (1 - b2) * ga[i] * (double)ga[i];
                double r1 = p0[i] * decay - lr / (1 - b1) * m1 / (Math.Sqrt(v1) / Math.Sqrt(1 - b2) + eps);
                double m2 = b1 * m1 + (1 - b1) * gb[i], v2 = b2 * v1 + (1 - b2) * gb[i] * (double)gb[i];
                double r2 = a1[i] * decay - lr / (1 - b1 * b1) * m2 / (Math.Sqrt(v2) / Math.Sqrt(1 - b2 * b2) + eps);
                worst = Math.Max(worst, Math.Abs(a1[i] - r1) / Ulp(r1, r1 - p0[i]));
                worst = Math.Max(worst, Math.Abs(a2[i] - r2) / Ulp(r2, r2 - a1[i]));
            }
        }
        return worst;
    }

    private static double Ulp(double value, double change) => Math.ScaleB(Math.Abs(value) + Math.Abs(change), -23) + 1e-40;
}
