using System.CommandLine;
using System.Globalization;
using Raft.Pipeline;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;

namespace Raft.Cli.Commands;

/// <summary><c>raft eval</c>: greedy answers of a checkpoint on JSONL sets, scored by answer extractors and format instructions.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The checkpoint folder to evaluate.", Required = true, HelpName = "DIR" };
        var sets = new Option<string[]>("--set") { Description = "An evaluation JSONL (repeatable): {\"prompt\", \"answer\"?, \"extractor\"?, \"instructions\"?: [{\"kind\", \"value\"}]} per line, or a Parquet file (.parquet) with those columns (instructions: a list of structs {kind, value}).", Required = true, HelpName = "FILE", AllowMultipleArgumentsPerToken = false };
        var output = new Option<string>("--out") { Description = "Directory for report.json, report.md and answers.jsonl (per item: prompt, answer, extracted answer, correct, each instruction's strict and loose verdict).", Required = true, HelpName = "DIR" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens per answer.", DefaultValueFactory = _ => 64, HelpName = "N" };
        var threads = new Option<int>("--threads") { Description = "CPU threads, 0 = all cores.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var weightsDType = new Option<string>("--weights-dtype") { Description = "How the model holds its matrices: fp32 (widened), bf16 or fp16 (as stored, widened inside the matmul kernels, fp32 accumulation).", DefaultValueFactory = _ => "fp32", HelpName = "fp32|bf16|fp16" };
        var skipBad = new Option<bool>("--skip-bad-lines") { Description = "Skip malformed lines (reported and counted)." };
        var rows = new Option<string?>("--rows") { Description = TrainCommand.RowsHelp + " Applies to every --set.", HelpName = "FROM:TO" };
        var adapter = new Option<string?>("--adapter") { Description = "A LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors, e.g. a LoRA run's final/) applied to --model, its base.", HelpName = "DIR" };
        var command = new Command("eval", "Scores a checkpoint on evaluation sets: accuracy by answer extractors, compliance with verifiable format instructions (IFEval-like); writes report.json, report.md and answers.jsonl.");
        foreach (Option o in (Option[])[model, adapter, sets, rows, output, maxNew, threads, weightsDType, skipBad]) command.Options.Add(o);
        command.SetAction(parse => SignalStop.BeforeOutput(parse.InvocationConfiguration.Error, $"--out {parse.GetValue(output)}", check =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            string modelDir = parse.GetValue(model)!, outDir = parse.GetValue(output)!;
            int max = parse.GetValue(maxNew);
            if (max < 1) throw new UsageException($"--max-new-tokens must be ≥ 1, got {max}.");
            int th = parse.GetValue(threads);
            CliChecks.CheckThreads("--threads", th);
            Raft.Model.SafeTensorDType weights;
            try { weights = Raft.Model.SafeTensorDTypes.ParseWeightsDType(parse.GetValue(weightsDType), "--weights-dtype"); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
            RowSlice? slice = null;
            if (parse.GetValue(rows) is string rowsText)
            {
                try { slice = RowSlice.Parse(rowsText); }
                catch (ArgumentException e) { throw new UsageException($"--rows {CliErrors.WithoutParameter(e)}."); }
            }
            CliChecks.CheckInputDirectory("--model", modelDir);
            var files = parse.GetValue(sets) ?? [];
            foreach (var f in files) CliChecks.CheckInputFile("--set", f);
            CheckDistinct(files);
            CliChecks.CheckOutputsApart([new("--model", modelDir), .. files.Select(f => new CliChecks.PathArgument("--set", f))], [new("--out", outDir)], mayContainInputs: true);
            var loaded = new List<EvalSet>();
            foreach (var f in files)
            {
                try { loaded.Add(EvalSet.Load(f, skipBadLines: parse.GetValue(skipBad), log: l => stderr.WriteLine($"warning: {l}"), rows: slice)); }
                catch (DataFormatException e) { throw new UsageException(TrainCommand.DataError(e)); }
                catch (ArgumentException e) when (e.ParamName == "rows") { throw new UsageException($"--rows {CliErrors.WithoutParameter(e)} (--set {f})."); }
                string unit = DataFormatException.UnitOf(f);
                if (loaded[^1].Items.Count == 0)
                    throw new UsageException($"--set {f}: no items ({(loaded[^1].SkippedLines > 0 ? $"all {loaded[^1].SkippedLines} {unit}s were skipped as malformed" : slice is not null ? $"--rows {slice} selects none of its {unit}s" : $"the file has no {unit}s")}).");
            }
            string? adapterDir = parse.GetValue(adapter);
            if (adapterDir is not null) CliChecks.CheckInputDirectory("--adapter", adapterDir);
            var student = ModelStore.LoadStudent(modelDir, weights, th);
            if (adapterDir is not null)
            {
                try { student.Model.Lora = Raft.Model.LoraFiles.Load(adapterDir, student.Model.Layout); }
                catch (FileNotFoundException e) { throw new UsageException($"--adapter {adapterDir}: {e.Message}"); }
                catch (ArgumentException e) when (e is not Raft.Model.UnsupportedConfigException) { throw new UsageException($"--adapter {adapterDir}: {e.Message}"); }
            }
            foreach (var set in loaded)
            {
                try { PromptFit.Check(student.Tokenizer, student.Template, student.Model.Config.MaxPositionEmbeddings, set); }
                catch (DataFormatException e) { throw new UsageException($"--set {e.Message}"); }
            }
            // Checked (and created) once the inputs are known good, so that a wrong input leaves no output directory behind.
            CliChecks.CheckOutputDirectory("--out", outDir);
            stderr.WriteLine($"chat template: {student.Template.Origin}");
            if (student.Model.IsInferenceOnly) stderr.WriteLine($"weights: {student.Model.WeightsDescription} (inference only)");
            var results = new List<EvalSetResult>();
            foreach (var set in loaded)
            {
                var r = ModelEvaluator.Evaluate(student.Model, student.Tokenizer, student.Template, set, max);
                results.Add(r);
                check(); // a signal stops the evaluation here, before --out is written
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{set.Name}: {r.N} items, accuracy {(r.Accuracy is double a ? a.ToString("P1", CultureInfo.InvariantCulture) : "-")}, format compliance {(r.FormatCompliance is double c ? c.ToString("P1", CultureInfo.InvariantCulture) : "-")}"));
            }
            var report = EvalReport.From(results, adapterDir is null
                ? new Dictionary<string, string> { ["model"] = Path.GetFullPath(modelDir) }
                : new Dictionary<string, string> { ["model"] = Path.GetFullPath(modelDir), ["adapter"] = Path.GetFullPath(adapterDir) });
            report.Write(outDir, answers: results); // the three files whole, or (a failure) none of them new
            parse.InvocationConfiguration.Output.WriteLine(report.ToJson().ReplaceLineEndings(" "));
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Each --set must be a different file with a different set name (the report is keyed by name).</summary>
    private static void CheckDistinct(IReadOnlyList<string> files)
    {
        var byPath = new Dictionary<string, string>(StringComparer.Ordinal);
        var byName = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            string full = CliChecks.RealPath(f);
            if (byPath.TryGetValue(full, out var first))
                throw new UsageException(first == f ? $"--set {f}: given twice." : $"--set {f}: is the same file as --set {first}.");
            byPath[full] = f;
            string name = Path.GetFileNameWithoutExtension(f);
            if (byName.TryGetValue(name, out var other))
                throw new UsageException($"--set {f}: its set name \"{name}\" is already used by --set {other} (the report is keyed by file name; rename one).");
            byName[name] = f;
        }
    }
}
