using System.CommandLine;
using System.Text.Json;
using Raft.Model;
using Raft.Model.Tokenization;

namespace Raft.Cli.Commands;

/// <summary><c>raft merge-lora</c>: a base checkpoint plus a PEFT LoRA adapter become one plain Hugging Face checkpoint.</summary>
internal static class MergeLoraCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The base checkpoint folder the adapter was trained on.", Required = true, HelpName = "DIR" };
        var adapter = new Option<string>("--adapter") { Description = "The adapter folder (adapter_config.json, adapter_model.safetensors), e.g. a LoRA run's final/.", Required = true, HelpName = "DIR" };
        var output = new Option<string>("--out") { Description = "The merged checkpoint folder to write (config.json, model.safetensors, the base's tokenizer files).", Required = true, HelpName = "DIR" };
        var command = new Command("merge-lora", "Merges a LoRA adapter into its base: W + (α/r)·B·A for every adapted projection, written as a plain Hugging Face checkpoint in the base's dtype.");
        command.Options.Add(model);
        command.Options.Add(adapter);
        command.Options.Add(output);
        command.SetAction(parse =>
        {
            string baseDir = parse.GetValue(model)!, adapterDir = parse.GetValue(adapter)!, outDir = parse.GetValue(output)!;
            CliChecks.CheckInputDirectory("--model", baseDir);
            CliChecks.CheckInputDirectory("--adapter", adapterDir);
            if (Path.GetFullPath(outDir) == Path.GetFullPath(baseDir))
                throw new UsageException($"--out {outDir}: is the --model folder; write the merged checkpoint elsewhere.");
            var (config, weights) = Checkpoint.Load(baseDir);
            LoraAdapters adapters;
            try { adapters = LoraFiles.Load(adapterDir, DecoderLayout.For(config)); }
            catch (FileNotFoundException e) { throw new UsageException($"--adapter {adapterDir}: {e.Message}"); }
            catch (ArgumentException e) when (e is not UnsupportedConfigException) { throw new UsageException($"--adapter {adapterDir}: {e.Message}"); }
            var dtype = config.TorchDtype switch
            {
                "bfloat16" => SafeTensorDType.BF16,
                "float16" => SafeTensorDType.F16,
                _ => SafeTensorDType.F32,
            };
            var merged = adapters.Merge(weights);
            CliChecks.CheckOutputDirectory("--out", outDir);
            Checkpoint.Save(outDir, config, merged, null, staging => ModelSideFiles.Copy(baseDir, staging), dtype);
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
            {
                model = Path.GetFullPath(outDir), @base = Path.GetFullPath(baseDir), adapter = Path.GetFullPath(adapterDir),
                r = adapters.Config.Rank, lora_alpha = adapters.Config.Alpha, target_modules = adapters.Config.TargetModules,
                merged_tensors = adapters.Modules.Count(), dtype = dtype.ToString().ToLowerInvariant(),
            }));
            return ExitCodes.Success;
        });
        return command;
    }
}
