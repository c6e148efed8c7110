using Raft.Model;
using Raft.Model.Gguf;
using Raft.Teacher;

namespace Raft.DecodeBench;

/// <summary>
/// The peers' copies of the benchmark's weights, written once into a scratch folder (removed at exit): the checkpoint
/// (fp32 safetensors + config.json + the real Qwen2.5 tokenizer files, which the GGUF vocabulary needs), its ONNX export
/// (fp32, external data: what `raft export-onnx` writes) and its GGUF export in F16 (what `raft export-gguf --type f16`
/// writes). Every peer therefore computes with exactly the engine's BF16-representable weights.
/// </summary>
internal static class PeerModels
{
    public static string? Root;
    public static string OnnxDir => Path.Combine(Root!, "onnx");
    public static string GgufF16 => Path.Combine(Root!, "model-f16.gguf");

    /// <summary>Why the peers cannot run here (no tokenizer files), or null.</summary>
    public static string? Unavailable()
    {
        string tok = TokenizerDir();
        return File.Exists(Path.Combine(tok, "tokenizer.json")) && File.Exists(Path.Combine(tok, "tokenizer_config.json"))
            ? null
            : $"{tok} has no tokenizer.json / tokenizer_config.json: run tests/Raft.Model.Tests/fetch-tokenizers.sh (the GGUF export needs the real vocabulary).";
    }

    private static string TokenizerDir() =>
        Path.Combine(Environment.GetEnvironmentVariable("RAFT_TOKENIZER_FILES") is { Length: > 0 } r
            ? r : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "raft-tokenizers"), "qwen2_5");

    /// <summary>Writes the checkpoint, the ONNX export and the GGUF export from the fp32 model's weights.</summary>
    public static void Write(LlamaModel fp32, string root)
    {
        Root = root;
        string ckpt = Path.Combine(root, "checkpoint");
        Directory.CreateDirectory(ckpt);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Checkpoint.Save(ckpt, fp32.Config, fp32.Parameters);
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(TokenizerDir(), f), Path.Combine(ckpt, f), overwrite: true);
        OnnxExporter.Export(fp32.Config, fp32.Parameters, OnnxDir);
        GgufExporter.Export(ckpt, GgufF16, GgmlType.F16);
        Console.Error.WriteLine($"// wrote the peers' copies (checkpoint, ONNX fp32, GGUF F16) under {root} in {sw.Elapsed.TotalSeconds:F0} s");
    }
}
