using System.CommandLine;
using System.Globalization;
using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline.Demo;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Cli.Commands;

/// <summary><c>raft demo</c>: the built-in benchmark world, SFT vs RAFT over seeds, the paper's table.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string?>("--out") { Description = "Also write DIR/report.md, DIR/report.json and DIR/learning_curves.png.", HelpName = "DIR" };
        var ablations = new Option<bool>("--ablations") { Description = "Add RAFT without refinement, without answer conditioning, and with fixed weights, and the LoRA rows sft_lora and raft_lora." };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds.", DefaultValueFactory = _ => "1,2,3", HelpName = "1,2,3" };
        var teacher = new Option<string>("--teacher") { Description = "How the base model serves as teacher: onnx (exported and run by ONNX Runtime, the product path) or engine (its own frozen forward).", DefaultValueFactory = _ => "onnx", HelpName = "onnx|engine" };
        var baseModel = new Option<string?>("--base") { Description = "The base checkpoint (default: models/demo-base, or models/demo-v2-base with --world v2, found in the working directory, next to the binary or in the repository; v1's is trained first with raft pretrain's defaults if missing).", HelpName = "DIR" };
        var steps = new Option<int?>("--steps") { Description = "Training steps of SFT and RAFT (same budget for both; default 300).", HelpName = "N" };
        var learningRate = new Option<double?>("--learning-rate") { Description = "Peak learning rate of SFT and RAFT (default 3e-4, cosine decay to a tenth).", HelpName = "N" };
        var trainable = new Option<string?>("--trainable") { Description = "Which parameters SFT and RAFT train: a regular expression over tensor names (default mlp: the MLP blocks; '.*': every parameter, see docs/demo.md).", HelpName = "REGEX" };
        var world = new Option<string>("--world") { Description = "Which built-in world: v1 (README's table) or v2 (issue #18's world, docs/demo.md; needs --base with the v2 base until it is committed).", DefaultValueFactory = _ => "v1", HelpName = "v1|v2" };
        var gapCheck = new Option<bool>("--gap-check") { Description = "v2 only: the pre-registered gap check (SFT on house-style answers vs SFT on the foreign references) instead of the table." };
        var quick = new Option<bool>("--quick") { Description = "v2 only: one seed, a smoke run." };
        var threads = new Option<int>("--threads") { Description = "CPU threads, 0 = all cores.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var command = new Command("demo", "The built-in benchmark world: evaluates the base model, trains SFT and RAFT with the same budget over seeds, and prints domain accuracy, general accuracy and format compliance for each method.");
        foreach (Option o in (Option[])[output, ablations, seeds, teacher, baseModel, steps, learningRate, trainable, world, gapCheck, quick, threads]) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            int[] seedList;
            try { seedList = parse.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s.Trim(), CultureInfo.InvariantCulture)).ToArray(); }
            catch (FormatException) { throw new UsageException($"--seeds '{parse.GetValue(seeds)}': expected comma-separated integers."); }
            if (seedList.Length == 0) throw new UsageException("--seeds names no seed.");
            string teacherKind = parse.GetValue(teacher)!.ToLowerInvariant();
            if (teacherKind is not ("onnx" or "engine")) throw new UsageException($"--teacher must be onnx or engine, got '{teacherKind}'.");
            int th = parse.GetValue(threads);
            CliChecks.CheckThreads("--threads", th);
            string? outDir = parse.GetValue(output);
            string worldName = parse.GetValue(world)!.ToLowerInvariant();
            if (worldName is not ("v1" or "v2")) throw new UsageException($"--world must be v1 or v2, got '{parse.GetValue(world)}'.");
            if (worldName == "v1" && (parse.GetValue(gapCheck) || parse.GetValue(quick)))
                throw new UsageException($"{(parse.GetValue(gapCheck) ? "--gap-check" : "--quick")} needs --world v2.");
            string basePath = parse.GetValue(baseModel) ?? FindBase(worldName == "v2" ? "models/demo-v2-base" : "models/demo-base");
            CliChecks.CheckOutputsApart([new("--base", basePath)], [new("--out", outDir)], mayContainInputs: true);
            if (outDir is not null) CliChecks.CheckOutputDirectory("--out", outDir);
            var defaults = new DemoOptions();
            var sft = defaults.Sft;
            if (parse.GetValue(steps) is int n)
                sft = n >= 1 ? sft with { Steps = n } : throw new UsageException($"--steps must be ≥ 1, got {n}.");
            if (parse.GetValue(learningRate) is double lr)
                sft = lr > 0 && double.IsFinite(lr) ? sft with { LearningRate = lr, MinLearningRate = lr / 10 } : throw new UsageException($"--learning-rate must be finite and > 0, got {lr}.");
            if (parse.GetValue(trainable) is string pattern)
            {
                sft = sft with { Trainable = pattern };
                try { sft.Validate(); }
                catch (ArgumentException e) { throw new UsageException($"--trainable: {e.Message}"); }
            }
            if (worldName == "v2" && (parse.GetValue(trainable) is not null || parse.GetValue(learningRate) is not null))
                throw new UsageException("--world v2 keeps its pre-registered budget: --trainable and --learning-rate are v1 options.");
            var options = defaults with
            {
                Seeds = seedList, Ablations = parse.GetValue(ablations), OutDir = outDir, BaseModel = basePath, Threads = th, Sft = sft,
            };
            string? onnxDir = null;
            Func<LlamaModel, ITeacher>? factory = null;
            if (teacherKind == "onnx")
            {
                factory = model =>
                {
                    onnxDir = Path.Combine(Path.GetTempPath(), $"raft-demo-teacher-{Guid.NewGuid():N}");
                    OnnxExporter.Export(model.Config, model.Parameters, onnxDir);
                    return OnnxTeacher.Open(onnxDir, new TeacherOptions { Provider = ComputeDevice.Cpu, IntraOpThreads = th, Log = l => stderr.WriteLine(l) }, new CpuKernels(th));
                };
            }
            try
            {
                if (worldName == "v2")
                {
                    var v2 = new Raft.Pipeline.Demo.V2.DemoV2Options();
                    v2 = v2 with
                    {
                        Seeds = parse.GetValue(quick) ? [seedList[0]] : seedList, Ablations = parse.GetValue(ablations), Threads = th,
                        Budget = parse.GetValue(steps) is int s2 ? v2.Budget with { Steps = s2 } : v2.Budget,
                    };
                    return DemoV2Cli.Run(v2, basePath, parse.GetValue(gapCheck), outDir, factory, stdout, stderr);
                }
                var report = new DemoRunner(options, line => stderr.WriteLine(line), factory).Run();
                stdout.WriteLine();
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"RAFT demo: {report.Seeds.Count} seeds, {report.Seconds:F0} s. Accuracy in percent, mean ± standard deviation over seeds."));
                if (report.BudgetText is { } budget) stdout.WriteLine($"Budget of both methods: {budget}.");
                stdout.Write(report.ToMarkdown());
                if (outDir is not null) stdout.WriteLine($"wrote {Path.Combine(outDir, "report.md")}, report.json and learning_curves.png");
            }
            finally
            {
                if (onnxDir is not null && Directory.Exists(onnxDir)) Directory.Delete(onnxDir, recursive: true);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary><paramref name="rel"/> (models/demo-base or models/demo-v2-base) under the working directory, next to the
    /// binary (the build copies both bases there) or under any parent of the binary's folder (the repository).</summary>
    internal static string FindBase(string rel)
    {
        if (Directory.Exists(rel)) return rel;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, rel);
            if (Directory.Exists(candidate)) return candidate;
        }
        return rel;
    }
}
