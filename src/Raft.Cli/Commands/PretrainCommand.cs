using System.CommandLine;
using System.Text.Json;
using Raft.Model;
using Raft.Pipeline.Demo;
using Raft.Pipeline.Demo.V2;
using Raft.Pipeline.Training;

namespace Raft.Cli.Commands;

/// <summary><c>raft pretrain</c>: instruction-tunes a built-in world's base model from random weights.</summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Where the base checkpoint goes (config.json + model.safetensors); the repository's v1 base is models/demo-base. An existing checkpoint there is replaced only with --overwrite.", Required = true, HelpName = "DIR" };
        var world = new Option<string>("--world") { Description = "Which world's base: v1 (the current demo's, 0.8 M parameters, two phases) or v2 (docs/demo.md's design, 4.8 M parameters, one phase).", DefaultValueFactory = _ => "v1", HelpName = "v1|v2" };
        var runDir = new Option<string?>("--run-dir") { Description = "The run directory (metrics.jsonl, resumable checkpoints); default: <out>.run.", HelpName = "DIR" };
        var steps = new Option<int?>("--steps") { Description = $"Training steps (default {DemoBase.DefaultOptions.Steps} for v1, {DemoV2Base.DefaultOptions.Steps} for v2).", HelpName = "N" };
        var copySteps = new Option<int>("--copy-steps") { Description = "v1 only: steps of the second, copy phase.", DefaultValueFactory = _ => DemoBase.CopyPhaseOptions.Steps, HelpName = "N" };
        var seed = new Option<int>("--seed") { Description = "Seed of the initial weights and the data stream.", DefaultValueFactory = _ => 1, HelpName = "N" };
        var threads = new Option<int>("--threads") { Description = "CPU threads, 0 = all cores.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var every = new Option<int?>("--checkpoint-every") { Description = $"Resumable checkpoint every N steps (default 500 for v1, {DemoV2Base.DefaultOptions.CheckpointEvery} for v2: a few minutes on 2 cores).", HelpName = "N" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in the run directory from its newest checkpoint (bit for bit what the uninterrupted run computes)." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh: remove the previous run's files from the run directory and replace the checkpoint in --out." };
        var command = new Command("pretrain", "Instruction-tunes a built-in world's base model (tiny Llama, byte tokenizer) on general skills in one house style, format instructions, rewriting and reference use (v1: two phases, the general stream then the copy phase).");
        foreach (Option o in (Option[])[output, world, runDir, steps, copySteps, seed, threads, every, resume, overwrite]) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            string outDir = parse.GetValue(output)!;
            string run = parse.GetValue(runDir) ?? Path.TrimEndingDirectorySeparator(outDir) + ".run";
            string w = parse.GetValue(world)!.Trim().ToLowerInvariant();
            if (w is not ("v1" or "v2")) throw new UsageException($"--world must be v1 or v2, got '{parse.GetValue(world)}'.");
            bool v2 = w == "v2";
            CliChecks.CheckThreads("--threads", parse.GetValue(threads));
            if (v2 && CliChecks.IsGiven(parse, copySteps)) throw new UsageException("--copy-steps: the v2 base has one phase; drop the option or use --world v1.");
            var defaults = v2 ? DemoV2Base.DefaultOptions : DemoBase.DefaultOptions;
            var options = defaults with
            {
                Steps = parse.GetValue(steps) ?? defaults.Steps, Seed = parse.GetValue(seed), Threads = parse.GetValue(threads),
                CheckpointEvery = parse.GetValue(every) ?? (v2 ? DemoV2Base.DefaultOptions.CheckpointEvery : 500),
            };
            var copy = DemoBase.CopyPhaseOptions with { Steps = parse.GetValue(copySteps), Threads = options.Threads, CheckpointEvery = options.CheckpointEvery };
            try { options.Validate(); copy.Validate(); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
            if (File.Exists(outDir)) throw new UsageException($"--out {outDir}: is a file, not a directory (the base checkpoint is a folder).");
            if (File.Exists(run)) throw new UsageException($"--run-dir {run}: is a file, not a directory.");
            CliChecks.CheckOutputsApart([new("--run-dir", run)], [new("--out", outDir)]);
            bool doResume = parse.GetValue(resume), doOverwrite = parse.GetValue(overwrite);
            string[] phases = v2 ? [run] : [Path.Combine(run, "general"), Path.Combine(run, "copy")];
            CheckRunAndOut(outDir, run, phases[0], doResume, doOverwrite);
            string? parent = Path.GetDirectoryName(Path.GetFullPath(outDir));
            if (parent is not null) CliChecks.CheckOutputDirectory("--out (its parent)", parent);
            CliChecks.CheckOutputDirectory("--run-dir", run);
            // One run per run directory, as raft train's (released on exit; a crashed run's lock is taken over).
            using var folderLock = RunLock.Acquire("--run-dir", run, "raft pretrain", stderr);
            CheckRunAndOut(outDir, run, phases[0], doResume, doOverwrite); // again under the lock: a run that ended meanwhile may have filled it
            if (doOverwrite) ClearRun(phases, stderr);
            if (doResume) foreach (string phase in phases.Where(Directory.Exists)) TrainCommand.RemoveLeftovers(phase, stderr);
            var progress = new ProgressReporter(stderr, ProgressReporter.IsTerminal(stderr));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var afterStep = FaultInjection.AfterStep(0, stderr);
            using var signals = new SignalStop(stderr);
            LlamaModel model;
            try
            {
                model = v2
                    ? DemoV2Base.Pretrain(options, run, l => stderr.WriteLine(l), progress.Report, doResume, afterStep: afterStep, cancellation: signals.Token)
                    : DemoBase.Pretrain(options, run, l => stderr.WriteLine(l), progress.Report, doResume, copy, afterStep, signals.Token);
            }
            catch (OperationCanceledException) when (signals.Signal is { } signal)
            {
                return SignalStop.Stopped(signal, Enumerable.Reverse(phases).Select(Trainer.LatestCheckpoint).FirstOrDefault(c => c is not null), stderr);
            }
            Checkpoint.Save(outDir, model.Config, model.Parameters);
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
            {
                model = outDir, world = w, run_dir = run, steps = options.Steps, copy_steps = v2 ? 0 : copy.Steps,
                seconds = Math.Round(sw.Elapsed.TotalSeconds, 1),
            }));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The rule of <c>raft train</c>'s run folders, for pretraining: a run directory with files needs <c>--resume</c> (and
    /// a checkpoint in its first phase) or <c>--overwrite</c>; an existing checkpoint in <c>--out</c> is replaced only with
    /// <c>--overwrite</c>; the two options exclude each other.
    /// </summary>
    private static void CheckRunAndOut(string outDir, string run, string firstPhase, bool resume, bool overwrite)
    {
        if (resume && overwrite) throw new UsageException("--resume and --overwrite exclude each other: continue the run in --run-dir, or start it afresh.");
        bool outHolds = Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any();
        if (outHolds && resume)
            throw new UsageException($"--out {outDir}: holds files; a resumed run writes its base there at the end: move them away or give another --out.");
        if (outHolds && !overwrite)
            throw new UsageException($"--out {outDir}: holds files (a base checkpoint?); give --overwrite to replace it, or another --out.");
        if (resume)
        {
            if (Trainer.LatestCheckpoint(firstPhase) is null)
                throw new UsageException($"--resume: the run directory {run} holds no checkpoint to continue from; drop --resume to start the run.");
            return;
        }
        // a lock file alone (a run that crashed before writing anything) leaves the run directory empty
        bool runHolds = Directory.Exists(run) && Directory.EnumerateFileSystemEntries(run).Any(e => Path.GetFileName(e) != RunLock.FileName);
        if (runHolds && !overwrite)
            throw new UsageException($"--run-dir {run}: holds a previous run; give --resume to continue it or --overwrite to start afresh.");
    }

    /// <summary>Removes the previous run's entries (<see cref="Trainer.RunEntries"/> of every phase); other files stay.</summary>
    private static void ClearRun(IEnumerable<string> phases, TextWriter info)
    {
        foreach (string phase in phases)
            foreach (string entry in Trainer.RunEntries)
            {
                string path = Path.Combine(phase, entry);
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else if (File.Exists(path)) File.Delete(path);
            }
        info.WriteLine("raft: --overwrite: removed the previous run's files");
    }
}
