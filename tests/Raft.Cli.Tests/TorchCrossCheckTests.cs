using System.Diagnostics;
using System.Text.Json;

namespace Raft.Cli.Tests;

/// <summary>
/// An independent reference: PyTorch (float64, autograd) computes the same top-K temperature distillation from
/// the same .npy files, with its own topk, softmax and backward, and reads and writes .npy through NumPy. This
/// checks the engine's specification (not only its fast code against its own reference) and the .npy interop.
/// </summary>
public class TorchCrossCheckTests : CliHarness
{
    private const string Script = """
        import sys, json, numpy as np, torch
        s_path, t_path, w_path, k, tau, kind, beta, g_path = sys.argv[1:9]
        k, tau, beta = int(k), float(tau), float(beta)
        s = torch.tensor(np.load(s_path), dtype=torch.float64, requires_grad=True)
        t = torch.tensor(np.load(t_path), dtype=torch.float64)
        w = torch.tensor(np.load(w_path), dtype=torch.float64)
        vals, idx = torch.topk(t, k, dim=-1)
        p = torch.softmax(vals / tau, dim=-1).float().double()   # the engine hands fp32 probabilities on
        logq = torch.log_softmax(s / tau, dim=-1)
        if kind == "forward-kl":
            d = (torch.xlogy(p, p) - p * logq.gather(-1, idx)).sum(-1)
        elif kind == "reverse-kl":
            qk = torch.softmax(s.gather(-1, idx) / tau, dim=-1)
            d = (qk * (torch.log(qk) - torch.log(p.clamp_min(1e-30)))).sum(-1)
        else:
            P = torch.zeros_like(t).scatter(-1, idx, p)
            q = logq.exp()
            M = beta * P + (1 - beta) * q
            d = beta * (torch.xlogy(P, P) - P * torch.log(M)).sum(-1) + (1 - beta) * (q * (logq - torch.log(M))).sum(-1)
        loss = (w * tau * tau * d).sum() / w.sum()
        loss.backward()
        np.save(g_path, s.grad.numpy().astype(np.float32))
        print(json.dumps({"loss": loss.item()}))
        """;

    [TorchReferenceFact]
    public void KdMatchesPyTorchForEveryLossKind()
    {
        const int rows = 6, vocab = 301, k = 17;
        const string tau = "1.5";
        var (student, teacher, _, _) = WriteLogits(rows, vocab, seed: Environment.TickCount);
        var weights = new float[rows];
        var rng = new Random(Environment.TickCount);
        for (int r = 0; r < rows; r++) weights[r] = r == 2 ? 0f : 0.2f + (float)rng.NextDouble();
        string wPath = PathOf("w.npy");
        NpyFile.WriteFloat32(wPath, weights, rows);
        string script = PathOf("reference.py");
        File.WriteAllText(script, Script);

        foreach (var (kind, beta) in new[] { ("forward-kl", "0.5"), ("reverse-kl", "0.5"), ("jsd", "0.3"), ("jsd", "0.7") })
        {
            string ours = PathOf($"g-{kind}-{beta}.npy"), theirs = PathOf($"t-{kind}-{beta}.npy");
            var run = Raft("kd", "--student", student, "--teacher", teacher, "--weights", wPath, "--top-k", $"{k}",
                "--temperature", tau, "--loss-kind", kind, "--jsd-beta", beta, "--grad-out", ours);
            Assert.True(run.Code == 0, run.Stderr);
            double ourLoss = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("loss").GetDouble();

            var psi = new ProcessStartInfo(TorchReferenceFactAttribute.Python) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { script, student, teacher, wPath, $"{k}", tau, kind, beta, theirs }) psi.ArgumentList.Add(a);
            using var py = Process.Start(psi)!;
            string output = py.StandardOutput.ReadToEnd(), errors = py.StandardError.ReadToEnd();
            py.WaitForExit();
            Assert.True(py.ExitCode == 0, $"python reference failed: {errors}");
            double torchLoss = JsonDocument.Parse(output).RootElement.GetProperty("loss").GetDouble();

            Assert.True(Math.Abs(ourLoss - torchLoss) <= 1e-5 * Math.Abs(torchLoss),
                $"{kind} β={beta}: loss {ourLoss:R} vs PyTorch {torchLoss:R}");
            var g = NpyFile.ReadFloat32(ours, 2, "[rows, vocab]").Data;
            var e = NpyFile.ReadFloat32(theirs, 2, "[rows, vocab]").Data;
            double scale = e.Max(Math.Abs), worst = 0;
            for (int i = 0; i < e.Length; i++) worst = Math.Max(worst, Math.Abs(e[i] - g[i]));
            Assert.True(worst <= 1e-5 * scale, $"{kind} β={beta}: gradient differs from PyTorch's by {worst:E3} (scale {scale:E3})");
            Assert.All(g.AsSpan(2 * vocab, vocab).ToArray(), x => Assert.Equal(0f, x));
        }
    }
}
