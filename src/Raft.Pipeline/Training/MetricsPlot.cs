using System.Globalization;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Training;

/// <summary>
/// <c>raft plot</c>'s chart of a run: one panel each for the total loss, the KD and SFT terms, their weights, the
/// gradient norm (before clipping), tokens/s and the learning rate, against the step, and, when the run evaluated during
/// training (eval lines of metrics.jsonl: <see cref="EvalMetrics"/>), one more panel of each set's accuracy and format
/// compliance at the evaluated steps. Skipped steps (non-finite loss) break the lines.
/// </summary>
public static class MetricsPlot
{
    /// <summary>The panels for <paramref name="steps"/> (RAFT-only terms are left out of an SFT run's panels).</summary>
    public static IReadOnlyList<ChartPanel> Panels(IReadOnlyList<StepMetrics> steps, IReadOnlyList<EvalMetrics>? evals = null)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ChartSeries S(string name, Func<StepMetrics, double?> value) =>
            new(name, steps.Select(m => ((double)m.Step, m.Skipped ? double.NaN : value(m) ?? double.NaN)).ToArray());
        bool raft = steps.Any(m => m.KdLoss is not null);
        var terms = raft ? new[] { S("KD (τ²·D)", m => m.KdLoss), S("SFT (cross-entropy)", m => m.SftLoss) } : [S("SFT (cross-entropy)", m => m.SftLoss)];
        var weights = raft ? new[] { S("w_kd", m => m.WeightKd), S("w_sft", m => m.WeightSft) } : [S("w_sft", m => m.WeightSft)];
        var panels = new List<ChartPanel>
        {
            new ChartPanel("Total loss (weighted)", "step", "loss", [S("loss", m => m.Loss)]),
            new ChartPanel("Loss terms", "step", "loss", terms),
            new ChartPanel("Term weights (EMA balancer)", "step", "weight", weights),
            new ChartPanel("Gradient norm (before clipping)", "step", "‖g‖₂", [S("grad norm", m => m.GradNorm)]),
            new ChartPanel("Throughput", "step", "tokens/s", [S("tokens/s", m => m.TokensPerSecond)]),
            new ChartPanel("Learning rate", "step", "lr", [S("lr", m => m.LearningRate)]),
        };
        if (evals is { Count: > 0 }) panels.Add(EvalPanel(evals));
        return panels;
    }

    /// <summary>Each set's accuracy and format compliance (fractions) against the step; a set without answers or instructions has no such line.</summary>
    private static ChartPanel EvalPanel(IReadOnlyList<EvalMetrics> evals)
    {
        var names = evals.SelectMany(e => e.Eval.Keys).Distinct(StringComparer.Ordinal).ToArray();
        var series = new List<ChartSeries>();
        foreach (string name in names)
        {
            (double, double)[] Line(Func<EvalSetMetrics, double?> value) => evals
                .Select(e => ((double)e.Step, e.Eval.TryGetValue(name, out var m) ? value(m) ?? double.NaN : double.NaN)).ToArray();
            var accuracy = Line(m => m.Accuracy);
            var format = Line(m => m.FormatCompliance);
            if (accuracy.Any(p => double.IsFinite(p.Item2))) series.Add(new ChartSeries($"{name} accuracy", accuracy));
            if (format.Any(p => double.IsFinite(p.Item2))) series.Add(new ChartSeries($"{name} format compliance", format));
        }
        return new ChartPanel("Evaluation (eval_set)", "step", "fraction", series);
    }

    /// <summary>Reads <paramref name="runDirectory"/>'s metrics and writes the panels as one PNG to <paramref name="output"/> (atomically).</summary>
    /// <returns>The number of steps plotted, of those skipped, and of evaluations plotted.</returns>
    public static (int Steps, int Skipped, int Evals) Write(string runDirectory, string output)
    {
        string path = Path.Combine(runDirectory, Trainer.MetricsFile);
        var steps = MetricsLog.Read(path);
        var evals = MetricsLog.ReadEvals(path);
        int skipped = steps.Count(m => m.Skipped);
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDirectory)));
        string note = string.Create(CultureInfo.InvariantCulture,
            $"{Trainer.MetricsFile}: {steps.Count} steps{(steps.Count > 0 ? $" ({steps[0].Step}–{steps[^1].Step})" : "")}, {skipped} skipped; per-step training values")
            + (evals.Count > 0 ? $", {evals.Count} evaluations" : ", no evaluation");
        Charts.WritePanels(output, $"Training run {name}", Panels(steps, evals), note, columns: 2);
        return (steps.Count, skipped, evals.Count);
    }
}
