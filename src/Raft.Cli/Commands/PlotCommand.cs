using System.CommandLine;
using System.Text.Json;
using Raft.Pipeline.Training;

namespace Raft.Cli.Commands;

/// <summary><c>raft plot</c>: a training run's per-step metrics (metrics.jsonl) as one PNG of panels.</summary>
internal static class PlotCommand
{
    public static Command Create()
    {
        var run = new Argument<string>("RUN_DIR") { Description = "The run directory of raft train / raft sft (holds metrics.jsonl)." };
        var output = new Option<string?>("--out") { Description = "The PNG to write (default: RUN_DIR-metrics.png beside the run directory; never inside it).", HelpName = "FILE" };
        var command = new Command("plot", "Plots a run's per-step metrics: total loss, KD and SFT terms, their weights, gradient norm, tokens/s and learning rate; and the eval sets' accuracy and format compliance when the run evaluated (--eval-set).");
        command.Arguments.Add(run);
        command.Options.Add(output);
        command.SetAction(parse =>
        {
            string runDir = parse.GetValue(run)!;
            CliChecks.CheckInputDirectory("RUN_DIR", runDir);
            string metrics = Path.Combine(runDir, Trainer.MetricsFile);
            if (!File.Exists(metrics)) throw new UsageException($"RUN_DIR {runDir}: has no {Trainer.MetricsFile}; is it a run directory of raft train or raft sft?");
            string outPath = parse.GetValue(output) ?? Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)) + "-metrics.png";
            CliChecks.CheckOutputsApart([new("RUN_DIR", runDir)], [new("--out", outPath)]);
            CliChecks.CheckOutputFile("--out", outPath);
            var (steps, skipped, evals) = MetricsPlot.Write(runDir, outPath);
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new { png = Path.GetFullPath(outPath), steps, skipped, evals }));
            return ExitCodes.Success;
        });
        return command;
    }
}
