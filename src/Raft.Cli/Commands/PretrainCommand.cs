using System.CommandLine;
using System.Text.Json;
using Raft.Model;
using Raft.Pipeline.Demo;

namespace Raft.Cli.Commands;

/// <summary><c>raft pretrain</c>: instruction-tunes the demo world's base model from random weights.</summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Where the base checkpoint goes (config.json + model.safetensors); the repository's is models/demo-base.", Required = true, HelpName = "DIR" };
        var runDir = new Option<string?>("--run-dir") { Description = "The run directory (metrics.jsonl, resumable checkpoints); default: <out>.run.", HelpName = "DIR" };
        var steps = new Option<int>("--steps") { Description = $"Training steps (default {DemoBase.DefaultOptions.Steps}).", DefaultValueFactory = _ => DemoBase.DefaultOptions.Steps, HelpName = "N" };
        var copySteps = new Option<int>("--copy-steps") { Description = $"Steps of the second, copy phase (default {DemoBase.CopyPhaseOptions.Steps}).", DefaultValueFactory = _ => DemoBase.CopyPhaseOptions.Steps, HelpName = "N" };
        var seed = new Option<int>("--seed") { Description = "Seed of the initial weights and the data stream (default 1).", DefaultValueFactory = _ => 1, HelpName = "N" };
        var threads = new Option<int>("--threads") { Description = "CPU threads, 0 = all cores.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var every = new Option<int>("--checkpoint-every") { Description = "Resumable checkpoint every N steps (default 500).", DefaultValueFactory = _ => 500, HelpName = "N" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the newest checkpoint of the run directory." };
        var command = new Command("pretrain", "Instruction-tunes (in two phases: the general stream, then the copy phase) the built-in world's base model (tiny Llama, byte tokenizer) on general skills in one house style, format instructions, rewriting and reference use.");
        foreach (Option o in (Option[])[output, runDir, steps, copySteps, seed, threads, every, resume]) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            string outDir = parse.GetValue(output)!;
            string run = parse.GetValue(runDir) ?? Path.TrimEndingDirectorySeparator(outDir) + ".run";
            var options = DemoBase.DefaultOptions with { Steps = parse.GetValue(steps), Seed = parse.GetValue(seed), Threads = parse.GetValue(threads), CheckpointEvery = parse.GetValue(every) };
            var copy = DemoBase.CopyPhaseOptions with { Steps = parse.GetValue(copySteps), Threads = options.Threads, CheckpointEvery = options.CheckpointEvery };
            try { options.Validate(); copy.Validate(); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
            if (File.Exists(outDir)) throw new UsageException($"--out {outDir}: is a file, not a directory (the base checkpoint is a folder).");
            if (File.Exists(run)) throw new UsageException($"--run-dir {run}: is a file, not a directory.");
            CliChecks.CheckOutputsApart([new("--run-dir", run)], [new("--out", outDir)]);
            string? parent = Path.GetDirectoryName(Path.GetFullPath(outDir));
            if (parent is not null) CliChecks.CheckOutputDirectory("--out (its parent)", parent);
            CliChecks.CheckOutputDirectory("--run-dir", run);
            var progress = new ProgressReporter(stderr, ProgressReporter.IsTerminal(stderr));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var model = DemoBase.Pretrain(options, run, l => stderr.WriteLine(l), progress.Report, parse.GetValue(resume), copy);
            Checkpoint.Save(outDir, model.Config, model.Parameters);
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new { model = outDir, run_dir = run, steps = options.Steps, copy_steps = copy.Steps, seconds = Math.Round(sw.Elapsed.TotalSeconds, 1) }));
            return ExitCodes.Success;
        });
        return command;
    }
}
