using System.CommandLine;
using System.Text.Json;
using Raft.Model.Gguf;

namespace Raft.Cli.Commands;

/// <summary><c>raft export-gguf</c>: a checkpoint becomes one GGUF v3 file for llama.cpp and Ollama.</summary>
internal static class ExportGgufCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The checkpoint folder (config.json, safetensors, tokenizer.json or tokenizer.model, tokenizer_config.json).", Required = true, HelpName = "DIR" };
        var output = new Option<string>("--out") { Description = "The GGUF file to write (atomically; not inside --model).", Required = true, HelpName = "FILE.gguf" };
        var dtype = new Option<string>("--dtype") { Description = "The matrices' type: f32, f16 or bf16 (norms and biases stay f32).", HelpName = "f32|f16|bf16", DefaultValueFactory = _ => "f32" };
        var command = new Command("export-gguf", "Exports a checkpoint (llama, qwen2) as a GGUF v3 file with llama.cpp's tensor names, hyper-parameters and tokenizer metadata (tokens, merges or scores, token types, BOS/EOS, pre-tokenizer, chat template).");
        command.Options.Add(model);
        command.Options.Add(output);
        command.Options.Add(dtype);
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(model)!, outFile = parse.GetValue(output)!, typeText = parse.GetValue(dtype)!;
            var type = typeText.ToLowerInvariant() switch
            {
                "f32" => GgmlType.F32,
                "f16" => GgmlType.F16,
                "bf16" => GgmlType.BF16,
                _ => throw new UsageException($"--dtype must be f32, f16 or bf16, got '{typeText}'."),
            };
            CliChecks.CheckInputDirectory("--model", dir);
            CliChecks.CheckOutputFile("--out", outFile);
            CliChecks.CheckOutputsApart([new("--model", dir)], [new("--out", outFile)]);
            GgufExportResult result;
            try
            {
                result = GgufExporter.Export(dir, outFile, type);
            }
            catch (NotSupportedException e)
            {
                throw new UsageException($"--model {dir}: {e.Message}");
            }
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
            {
                gguf = result.Path,
                architecture = result.Architecture,
                tensors = result.TensorCount,
                dtype = typeText.ToLowerInvariant(),
                tokenizer = result.TokenizerModel,
                pre_tokenizer = result.PreTokenizer,
                bytes = new FileInfo(result.Path).Length,
            }));
            return ExitCodes.Success;
        });
        return command;
    }
}
