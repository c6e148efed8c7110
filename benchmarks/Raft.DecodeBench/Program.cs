// Raft.DecodeBench: decode tokens/s of the engine at Qwen2.5-0.5B's shapes, fp32 vs BF16 weights (benchmarks/README.md).
//
//   dotnet <dll> [--layers N] [--threads N] [--out FILE] [BenchmarkDotNet options]
//       copy bandwidth, validation (BF16 decode vs the fp32 decode of the same widened weights), BenchmarkDotNet
//       (weights × batch 1, 8), peak RSS per weights dtype in a fresh process, then a markdown table (stdout, --out).
//   --peers: also ONNX Runtime (CPU EP) on the fp32 ONNX export and llama.cpp (LLamaSharp 0.30.0) on the F16 GGUF export
//       of the same weights, validated against the engine's fp32 decode, in the same BenchmarkDotNet run.
//   dotnet <dll> memory <fp32|bf16> [--layers N] [--threads N]
//       (internal) one peak-RSS measurement: build the model, prefill, 8 decode steps at batch 8; prints VmHWM.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using BenchmarkDotNet.Running;
using Raft.DecodeBench;
using Raft.Model;

var rest = new List<string>(args);
string? Take(string flag)
{
    int at = rest.IndexOf(flag);
    if (at < 0) return null;
    if (at + 1 >= rest.Count) { Console.Error.WriteLine($"{flag} needs a value."); Environment.Exit(2); }
    string v = rest[at + 1];
    rest.RemoveRange(at, 2);
    return v;
}
int Int(string flag, int dflt)
{
    string? v = Take(flag);
    if (v is null) return dflt;
    if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < 0) { Console.Error.WriteLine($"{flag} {v}: not a count."); Environment.Exit(2); }
    return n;
}
DecodeModels.Layers = Int("--layers", 24);
int threads = Int("--threads", Environment.ProcessorCount);
DecodeBenchmarks.Threads = threads;
string? outPath = Take("--out");
bool peers = rest.Remove("--peers");
var ic = CultureInfo.InvariantCulture;

if (rest.Count >= 3 && rest[0] == "memory" && rest[1] is "ort-fp32" or "llama.cpp-f16")
{
    // a peer's peak RSS: load the export written by the parent run (rest[2]), prefill, 8 decode steps at batch 8
    PeerModels.Root = rest[2];
    var pc = DecodeModels.Config();
    if (rest[1] == "ort-fp32") { using var o = new OrtDecoder(PeerModels.OnnxDir, pc, 8, threads); o.Step(new int[8 * DecodeBenchmarks.Prompt], DecodeBenchmarks.Prompt); for (int s = 0; s < 8; s++) o.Step(new int[8], 1); }
    else { using var l = new LlamaCppDecoder(PeerModels.GgufF16, 8, 64, threads); l.Step(new int[8 * DecodeBenchmarks.Prompt], DecodeBenchmarks.Prompt); for (int s = 0; s < 8; s++) l.Step(new int[8], 1); }
    Console.WriteLine(DecodeModels.PeakRss().ToString(ic));
    return 0;
}

if (rest.Count >= 2 && rest[0] == "memory")
{
    var dtype = SafeTensorDTypes.ParseWeightsDType(rest[1], "memory");
    var m = DecodeModels.Build(dtype, threads);
    var cache = m.CreateKvCache(8, 64);
    var logits = new float[8 * m.Config.VocabSize];
    m.Prefill(cache, new int[8 * DecodeBenchmarks.Prompt], DecodeBenchmarks.Prompt, logits);
    for (int s = 0; s < 8; s++) m.DecodeStep(cache, new int[8], logits);
    Console.WriteLine(DecodeModels.PeakRss().ToString(ic));
    return 0;
}

if (rest.Count >= 1 && rest[0] == "kernel")
{
    // (diagnostic) one projection's time, fp32 vs BF16 weights: y[n, 4864] = x[n, 896] · Wᵀ, median of 41 calls
    foreach (int n in new[] { 1, 8 })
        foreach (var (k, mm) in new[] { (896, 4864), (4864, 896) })
        {
            var x = new float[n * k]; var y = new float[n * mm];
            var w = new Tensor("w", [mm, k], new float[mm * k]);
            new Random(1).NextBytes(new byte[1]);
            for (int i = 0; i < w.Data.Length; i++) w.Data[i] = (i % 7) * 0.01f;
            var h = HalfMatrix.FromSingle(w, SafeTensorDType.BF16);
            double Median(Action a) { var t = new List<double>(); for (int r = 0; r < 41; r++) { var sw = Stopwatch.StartNew(); a(); t.Add(sw.Elapsed.TotalMilliseconds); } t.Sort(); return t[20]; }
            double f = Median(() => Raft.Model.Ops.Matmul.Forward(x, w.Data, default, y, n, k, mm, threads));
            double b = Median(() => Raft.Model.Ops.HalfMatmul.Forward(x, h, default, y, n, k, mm, threads));
            Console.WriteLine($"n {n} k {k} m {mm}: fp32 {f:F3} ms ({mm * (long)k * 4 / f / 1e6:F1} GB/s), bf16 {b:F3} ms ({mm * (long)k * 2 / b / 1e6:F1} GB/s)");
        }
    return 0;
}

var config = DecodeModels.Config();
var sb = new StringBuilder();
void Line(string s) { Console.WriteLine(s); sb.AppendLine(s); }

// copy bandwidth: a 1 GiB buffer copied by `threads` threads (each its slice), best of 5; bytes copied per second
double copyGBs;
{
    const long Bytes = 1L << 30;
    var src = GC.AllocateUninitializedArray<byte>((int)Bytes);
    var dst = GC.AllocateUninitializedArray<byte>((int)Bytes);
    src.AsSpan().Fill(1); dst.AsSpan().Fill(2);
    double best = double.MaxValue;
    for (int rep = 0; rep < 5; rep++)
    {
        var sw = Stopwatch.StartNew();
        long slice = Bytes / threads;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            long a = t * slice, b = t == threads - 1 ? Bytes : a + slice;
            src.AsSpan((int)a, (int)(b - a)).CopyTo(dst.AsSpan((int)a, (int)(b - a)));
        });
        best = Math.Min(best, sw.Elapsed.TotalSeconds);
    }
    copyGBs = Bytes / best / 1e9;
}

// validation: the BF16 decode against the fp32 decode of the same (widened) weights, batch 1 and 8, 4 steps after a prompt
var m32 = DecodeBenchmarks.Model(SafeTensorDType.F32);
var m16 = DecodeBenchmarks.Model(SafeTensorDType.BF16);
double worst = 0;
foreach (int b in new[] { 1, 8 })
{
    var c32 = m32.CreateKvCache(b, 32); var c16 = m16.CreateKvCache(b, 32);
    var l32 = new float[b * config.VocabSize]; var l16 = new float[b * config.VocabSize];
    var rng = new Random(b);
    var prompt = Enumerable.Range(0, b * 8).Select(_ => rng.Next(config.VocabSize)).ToArray();
    m32.Prefill(c32, prompt, 8, l32); m16.Prefill(c16, prompt, 8, l16);
    for (int s = 0; s < 4; s++)
    {
        var next = Enumerable.Range(0, b).Select(_ => rng.Next(config.VocabSize)).ToArray();
        m32.DecodeStep(c32, next, l32); m16.DecodeStep(c16, next, l16);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < l32.Length; i++) { maxDiff = Math.Max(maxDiff, Math.Abs(l32[i] - l16[i])); maxRef = Math.Max(maxRef, Math.Abs(l32[i])); }
        worst = Math.Max(worst, maxDiff / maxRef);
    }
}
Console.WriteLine($"// validation: BF16 vs fp32 decode logits, max normwise relative difference {worst:E2} (tolerance 1e-4)");
if (!(worst < 1e-4)) { Console.Error.WriteLine("validation failed"); return 1; }

string? peerRoot = null;
double ortDiff = double.NaN, llamaDiff = double.NaN;
if (peers)
{
    if (PeerModels.Unavailable() is { } why) { Console.Error.WriteLine($"--peers: {why}"); return 2; }
    LLama.Native.NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level == LLama.Native.LLamaLogLevel.Error) Console.Error.Write(message); });
    peerRoot = Path.Combine(Path.GetTempPath(), $"raft-decodebench-{Environment.ProcessId}");
    string root = peerRoot;
    AppDomain.CurrentDomain.ProcessExit += (_, _) => { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); };
    PeerModels.Write(m32, peerRoot);
    // the peers against the engine's fp32 decode of the same weights: batch 1 and 8, a prompt then 2 steps
    ortDiff = 0; llamaDiff = 0;
    foreach (int b in new[] { 1, 8 })
    {
        var rng = new Random(100 + b);
        var prompt = Enumerable.Range(0, b * 8).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var c32 = m32.CreateKvCache(b, 32); var l32 = new float[b * config.VocabSize];
        m32.Prefill(c32, prompt, 8, l32);
        using var ort = new OrtDecoder(PeerModels.OnnxDir, config, b, threads);
        using var lc = new LlamaCppDecoder(PeerModels.GgufF16, b, 32, threads);
        ort.Step(prompt, 8); lc.Step(prompt, 8);
        for (int st = 0; st < 2; st++)
        {
            var next = Enumerable.Range(0, b).Select(_ => rng.Next(config.VocabSize)).ToArray();
            m32.DecodeStep(c32, next, l32);
            var lo = ort.StepLogits(next, config.VocabSize);
            lc.Step(next, 1); var ll = lc.LastLogits(config.VocabSize);
            double maxRef = l32.Max(v => Math.Abs((double)v)), dOrt = 0, dLl = 0;
            for (int i = 0; i < l32.Length; i++) { dOrt = Math.Max(dOrt, Math.Abs(l32[i] - lo[i])); dLl = Math.Max(dLl, Math.Abs(l32[i] - ll[i])); }
            ortDiff = Math.Max(ortDiff, dOrt / maxRef); llamaDiff = Math.Max(llamaDiff, dLl / maxRef);
        }
    }
    // ONNX Runtime computes in fp32 like the engine: 1e-3. llama.cpp's F16 matmuls round every activation to F16
    // (ggml's f16 dot converts src1), an error of ~2^-11 per layer that grows with depth (2 layers: 7e-4, 24: 1.5e-3),
    // so its bound is 1e-2: still two orders below what a wrong model gives (a missing bias or rope differs by > 0.1).
    Console.WriteLine($"// validation: ONNX Runtime vs engine fp32 decode logits {ortDiff:E2} (tolerance 1e-3), llama.cpp F16 {llamaDiff:E2} (tolerance 1e-2: F16 activations) (max normwise relative difference)");
    if (!(ortDiff < 1e-3 && llamaDiff < 1e-2)) { Console.Error.WriteLine("peer validation failed"); return 1; }
    DecodeBenchmarks.Systems.AddRange(["ort-fp32", "llama.cpp-f16"]);
}

var summary = BenchmarkRunner.Run<DecodeBenchmarks>(args: [.. rest]);
if (summary.Reports.Any(r => !r.Success)) return 1;

// peak RSS per weights dtype, each in a fresh process
var rss = new Dictionary<string, double>();
string self = Environment.ProcessPath!, dll = typeof(DecodeModels).Assembly.Location;
foreach (string w in DecodeBenchmarks.Systems)
{
    var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true };
    if (!Path.GetFileNameWithoutExtension(self).Equals("Raft.DecodeBench", StringComparison.Ordinal)) psi.ArgumentList.Add(dll);
    foreach (var a in new[] { "memory", w, "--layers", DecodeModels.Layers.ToString(ic), "--threads", threads.ToString(ic) }) psi.ArgumentList.Add(a);
    if (w is "ort-fp32" or "llama.cpp-f16") psi.ArgumentList.Insert(psi.ArgumentList.IndexOf(w) + 1, peerRoot!);
    using var p = Process.Start(psi)!;
    string o = p.StandardOutput.ReadToEnd(); p.StandardError.ReadToEnd(); p.WaitForExit();
    rss[w] = long.TryParse(o.Trim(), NumberStyles.Integer, ic, out long v) ? v / 1048576.0 : double.NaN;
    Console.Error.WriteLine($"// peak RSS of {w}: {rss[w].ToString("F0", ic)} MiB");
}

long bytes32 = DecodeModels.WeightBytesPerStep(config, 4), bytes16 = DecodeModels.WeightBytesPerStep(config, 2);
double paramsM = (bytes32 - 0) / 4.0 / 1e6;
Line(peers ? "# Decode on the CPU: the engine (fp32, BF16 weights) vs ONNX Runtime and llama.cpp on the same weights" : "# Decode on the CPU: fp32 vs BF16 weights (engine)");
Line("");
Line($"- Machine: {Environment.ProcessorCount} logical cores, {(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1073741824.0).ToString("F1", ic)} GiB; {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; .NET {Environment.Version}; AVX-512 {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "yes" : "no")}; threads {threads}; load average at the end {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
Line($"- Model: Qwen2.5-0.5B-Instruct's shapes, {config.NumHiddenLayers} layers, hidden 896, intermediate 4864, 14 heads / 2 KV, vocab 151,936, tied, q/k/v biases; random weights made by the benchmark (BF16-rounded; the fp32 model holds their exact widening); {paramsM.ToString("F1", ic)} M weights");
Line($"- Step: one `LlamaModel.DecodeStep` of B sequences after a {DecodeBenchmarks.Prompt}-token prompt (KV cache up to {DecodeBenchmarks.Capacity} positions, refilled when full); BenchmarkDotNet in-process, 3 warm-ups + 15 measured steps of one call; tokens/s = B / mean step time");
Line($"- Floor: weight bytes read per step (every matrix once, lm_head = the tied embedding; fp32 {(bytes32 / 1e6).ToString("F0", ic)} MB, BF16 {(bytes16 / 1e6).ToString("F0", ic)} MB) ÷ measured copy bandwidth {copyGBs.ToString("F1", ic)} GB/s (1 GiB memcpy on {threads} threads, best of 5, bytes copied per second); floor tokens/s = B ÷ that time");
Line($"- Validation: BF16 decode logits vs the fp32 decode of the same weights, batch 1 and 8, 4 steps: max normwise relative difference {worst.ToString("E2", ic)}");
if (peers)
    Line($"- Peers: ONNX Runtime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version} (CPU EP, ORT_ENABLE_ALL, {threads} intra-op threads) on the fp32 ONNX export with past_key_values fed back each step; llama.cpp (LLamaSharp 0.30.0 CPU backend, {threads} threads, fp32 KV cache, no flash attention) on the F16 GGUF export, B sequences per llama_decode; both exported by the engine from the same weights. Validation against the engine's fp32 decode: ONNX Runtime {ortDiff.ToString("E2", ic)}, llama.cpp F16 {llamaDiff.ToString("E2", ic)}");
Line("");
Line("| weights | batch | ms/step | ± ms | tokens/s | floor tokens/s | % of floor | vs fp32 | peak RSS (MiB) |");
Line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
var means = new Dictionary<(string, int), double>();
foreach (var r in summary.Reports)
{
    var p = r.BenchmarkCase.Parameters;
    means[((string)p["Weights"], (int)p["Batch"])] = r.ResultStatistics!.Mean / 1e6;
}
foreach (var r in summary.Reports.OrderBy(r => (int)r.BenchmarkCase.Parameters["Batch"]).ThenBy(r => DecodeBenchmarks.Systems.IndexOf((string)r.BenchmarkCase.Parameters["Weights"])))
{
    string w = (string)r.BenchmarkCase.Parameters["Weights"];
    int b = (int)r.BenchmarkCase.Parameters["Batch"];
    bool sixteen = w is "bf16" or "llama.cpp-f16";
    double ms = r.ResultStatistics!.Mean / 1e6, sd = r.ResultStatistics.StandardDeviation / 1e6;
    double tps = b / (ms / 1e3);
    double floorMs = (sixteen ? bytes16 : bytes32) / (copyGBs * 1e9) * 1e3;
    double floorTps = b / (floorMs / 1e3);
    double vs = means[("fp32", b)] / ms;
    Line($"| {w} | {b} | {ms.ToString("F1", ic)} | {sd.ToString("F1", ic)} | {tps.ToString("F1", ic)} | {floorTps.ToString("F1", ic)} | {(100 * floorMs / ms).ToString("F0", ic)} | {vs.ToString("F2", ic)} | {(rss.TryGetValue(w, out double mib) ? mib.ToString("F0", ic) : "—")} |");
}
Line("");
Line("Peak RSS: VmHWM of a fresh process that builds only that model (the engine: includes the fp32 generation buffer of each matrix before it is rounded; a peer: loads its export), prefills and decodes 8 steps at batch 8.");
if (outPath is not null) AtomicFile.WriteText(outPath, sb.ToString());
return 0;
