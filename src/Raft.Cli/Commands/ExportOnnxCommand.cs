using System.CommandLine;
using System.Text.Json;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Teacher;

namespace Raft.Cli.Commands;

/// <summary><c>raft export-onnx</c>: a checkpoint becomes an Optimum-style ONNX causal LM with KV cache (the teacher's format).</summary>
internal static class ExportOnnxCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The checkpoint folder.", Required = true, HelpName = "DIR" };
        var output = new Option<string>("--out") { Description = "The ONNX folder: model.onnx (+ model.onnx.data past 1.5 GB), config.json and the model's tokenizer, chat template and generation_config files.", Required = true, HelpName = "DIR" };
        var command = new Command("export-onnx", "Exports a checkpoint as an ONNX causal LM with the signature of Hugging Face Optimum's text-generation-with-past exports (opset 17, dynamic batch and sequence).");
        command.Options.Add(model);
        command.Options.Add(output);
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(model)!, outDir = parse.GetValue(output)!;
            CliChecks.CheckInputDirectory("--model", dir);
            CliChecks.CheckOutputsApart([new("--model", dir)], [new("--out", outDir)], mayContainInputs: true);
            CliChecks.CheckOutputDirectory("--out", outDir);
            var (config, weights) = Checkpoint.Load(dir);
            OnnxExporter.Export(config, weights, outDir);
            ModelSideFiles.Copy(dir, outDir);
            parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new { model = Path.Combine(outDir, OnnxExporter.ModelFile) }));
            return ExitCodes.Success;
        });
        return command;
    }
}
