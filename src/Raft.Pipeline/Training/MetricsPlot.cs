using System.Globalization;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Training;

/// <summary>
/// <c>raft plot</c>'s chart of a run: one panel each for the total loss, the KD and SFT terms, their weights, the
/// gradient norm (before clipping), tokens/s and the learning rate, against the step. Skipped steps (non-finite loss)
/// break the lines.
/// </summary>
public static class MetricsPlot
{
    /// <summary>The panels for <paramref name="steps"/> (RAFT-only terms are left out of an SFT run's panels).</summary>
    public static IReadOnlyList<ChartPanel> Panels(IReadOnlyList<StepMetrics> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ChartSeries S(string name, Func<StepMetrics, double?> value) =>
            new(name, steps.Select(m => ((double)m.Step, m.Skipped ? double.NaN : value(m) ?? double.NaN)).ToArray());
        bool raft = steps.Any(m => m.KdLoss is not null);
        var terms = raft ? new[] { S("KD (τ²·D)", m => m.KdLoss), S("SFT (cross-entropy)", m => m.SftLoss) } : [S("SFT (cross-entropy)", m => m.SftLoss)];
        var weights = raft ? new[] { S("w_kd", m => m.WeightKd), S("w_sft", m => m.WeightSft) } : [S("w_sft", m => m.WeightSft)];
        return
        [
            new ChartPanel("Total loss (weighted)", "step", "loss", [S("loss", m => m.Loss)]),
            new ChartPanel("Loss terms", "step", "loss", terms),
            new ChartPanel("Term weights (EMA balancer)", "step", "weight", weights),
            new ChartPanel("Gradient norm (before clipping)", "step", "‖g‖₂", [S("grad norm", m => m.GradNorm)]),
            new ChartPanel("Throughput", "step", "tokens/s", [S("tokens/s", m => m.TokensPerSecond)]),
            new ChartPanel("Learning rate", "step", "lr", [S("lr", m => m.LearningRate)]),
        ];
    }

    /// <summary>Reads <paramref name="runDirectory"/>'s metrics and writes the panels as one PNG to <paramref name="output"/> (atomically).</summary>
    /// <returns>The number of steps plotted and of those skipped.</returns>
    public static (int Steps, int Skipped) Write(string runDirectory, string output)
    {
        var steps = MetricsLog.Read(Path.Combine(runDirectory, Trainer.MetricsFile));
        int skipped = steps.Count(m => m.Skipped);
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDirectory)));
        string note = string.Create(CultureInfo.InvariantCulture,
            $"{Trainer.MetricsFile}: {steps.Count} steps{(steps.Count > 0 ? $" ({steps[0].Step}–{steps[^1].Step})" : "")}, {skipped} skipped; per-step training values, no evaluation");
        Charts.WritePanels(output, $"Training run {name}", Panels(steps), note, columns: 2);
        return (steps.Count, skipped);
    }
}
