using System.Diagnostics;
using System.Text.Json;

namespace Raft.Model.Tests;

/// <summary>
/// An independent oracle: <c>hf_reference.py</c>, Hugging Face transformers' forward for llama, mistral, qwen2 and qwen3
/// written in plain PyTorch from the transformers source (float32, as transformers runs a float32 checkpoint), reads
/// the same random checkpoint (config.json + model.safetensors, saved by <see cref="Checkpoint.Save"/>) and tokens at
/// positions past the original context; its logits must match the engine's fp32 model and its double reference.
/// </summary>
public class HfReferenceTests
{
    [TorchReferenceFact]
    public void EngineLogitsMatchAPyTorchHuggingFaceForwardForEveryFeatureSet()
    {
        using var dir = new TempDirectory();
        const int batch = 2, t = 9;
        var cases = new List<object>();
        var expected = new List<(string Name, string Out, float[] Fast, double[] Reference, int Vocab)>();
        int seed = Environment.TickCount;
        foreach (var (name, c) in FamilyTests.Configs)
        {
            var parameters = RandomData.RandomParameters(c, seed + name.Length, 0.3);
            string folder = Path.Combine(dir.Path, $"case{expected.Count}");
            Checkpoint.Save(folder, c, parameters);
            var (config, weights) = Checkpoint.Load(folder);   // what a user's checkpoint gives: the config as read back
            var tokens = RandomData.RandomTokens(batch * t, c.VocabSize, seed + 3 * name.Length);
            // positions: sequence 0 at 0..8, sequence 1 at 5..13 (past every config's original context)
            var pos = Enumerable.Range(0, batch * t).Select(i => i / t * 5 + i % t).ToArray();
            var fast = new LlamaModel(config, weights).Forward(tokens, batch, t, positions: pos);
            var reference = new ReferenceModel(config, weights).Forward(tokens, batch, t, out _, pos);
            string outPath = Path.Combine(dir.Path, $"logits{expected.Count}.bin");
            cases.Add(new
            {
                dir = folder, @out = outPath,
                ids = Enumerable.Range(0, batch).Select(b => tokens.Skip(b * t).Take(t).ToArray()).ToArray(),
                positions = Enumerable.Range(0, batch).Select(b => pos.Skip(b * t).Take(t).ToArray()).ToArray(),
            });
            expected.Add((name, outPath, fast, reference, c.VocabSize));
        }
        string casesPath = Path.Combine(dir.Path, "cases.json");
        File.WriteAllText(casesPath, JsonSerializer.Serialize(cases));
        string script = Path.Combine(AppContext.BaseDirectory, "hf_reference.py");
        var psi = new ProcessStartInfo(TorchReferenceFactAttribute.Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(casesPath);
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"hf_reference.py failed (seed {seed}): {stderr}");
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(expected.Count, lines.Length);
        var report = new List<string>();
        bool ok = true;
        foreach (var (name, outPath, fast, reference, vocab) in expected)
        {
            var bytes = File.ReadAllBytes(outPath);
            var hf = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, hf, 0, bytes.Length);
            Assert.Equal(fast.Length, hf.Length);
            double eFast = Tolerances.MaxRelErrorFp32(fast, hf);
            double eRef = Tolerances.MaxRelError(hf, reference);
            report.Add($"{name}: engine fp32 vs PyTorch HF {eFast:E2}, PyTorch HF vs engine double reference {eRef:E2}");
            ok &= eFast < 1e-5 && eRef < 1e-5;
        }
        Console.WriteLine(string.Join("\n", report));
        Assert.True(ok, $"seed {seed}, relative errors above 1e-5:\n" + string.Join("\n", report));
    }
}
