// A consumer of the Raft.Kernels and Raft.Model packages: one distillation step through ILossKernels (top-K softmax of
// teacher logits, then the fused KD loss + gradient of the student, and the SFT cross-entropy) on random logits, checked
// against ReferenceKernels (the double-precision specification), and the forward of a tiny random LlamaModel checked
// against ReferenceModel and against its own KV-cache decode. Prints what it measured; exits 1 on any mismatch.
// --corrupt perturbs the fast results slightly before they are checked (scripts/pack-and-sample.sh runs it so, and
// expects exit 1: the checks can fail).
using System.Globalization;
using Raft.Kernels;
using Raft.Model;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
bool corrupt = args.Contains("--corrupt");
void Perturb(Span<float> values)
{
    if (!corrupt) return;
    float scale = 0;
    foreach (var v in values) scale = Math.Max(scale, Math.Abs(v));
    values[values.Length / 3] += 0.01f * scale; // a 1 % error in one value
}
int failures = 0;
void Check(string what, double error, double tolerance)
{
    bool ok = double.IsFinite(error) && error <= tolerance;
    if (!ok) failures++;
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}: {error:E2} (tolerance {tolerance:E0})");
}

static double MaxRelError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
{
    double diff = 0, scale = 0;
    for (int i = 0; i < expected.Length; i++)
    {
        diff = Math.Max(diff, Math.Abs((double)actual[i] - expected[i]));
        scale = Math.Max(scale, Math.Abs(expected[i]));
    }
    return scale == 0 ? diff : diff / scale;
}

var rng = new Random(20);
float[] RandomLogits(int n, double scale) => Enumerable.Range(0, n).Select(_ => (float)(scale * (rng.NextDouble() * 2 - 1))).ToArray();

// ---- one distillation step through ILossKernels ----
const int rows = 12, vocab = 300, k = 16;
const float tau = 2f;
var teacher = RandomLogits(rows * vocab, 6);
var student = RandomLogits(rows * vocab, 6);
var weights = Enumerable.Range(0, rows).Select(r => r % 5 == 4 ? 0f : 1f).ToArray(); // some rows masked out
var targets = Enumerable.Range(0, rows).Select(_ => rng.Next(vocab)).ToArray();

ILossKernels fast = new CpuKernels();
ILossKernels reference = ReferenceKernels.Instance;
Console.WriteLine($"kernels: {fast.Name} against {reference.Name}; {rows} rows × {vocab} vocab, top-{k} at τ = {tau}");

int[] idx = new int[rows * k], refIdx = new int[rows * k];
float[] probs = new float[rows * k], refProbs = new float[rows * k];
fast.TopKSoftmax(teacher, rows, vocab, k, tau, idx, probs);
Perturb(probs);
reference.TopKSoftmax(teacher, rows, vocab, k, tau, refIdx, refProbs);
Check("top-K indices (count differing)", idx.Zip(refIdx).Count(p => p.First != p.Second), 0);
Check("top-K probabilities", MaxRelError(probs, refProbs), 1e-5);

foreach (var kind in new[] { DistillLossKind.ForwardKL, DistillLossKind.ReverseKL, DistillLossKind.Jsd })
{
    var settings = new DistillSettings(TopK: k, Temperature: tau, Kind: kind, Beta: 0.5f);
    var grad = new float[rows * vocab];
    var refGrad = new float[rows * vocab];
    var loss = fast.Distill(student, rows, vocab, refIdx, refProbs, settings, weights, grad);
    var refLoss = reference.Distill(student, rows, vocab, refIdx, refProbs, settings, weights, refGrad);
    Perturb(grad);
    Console.WriteLine($"     {kind}: loss {loss.Loss:F6} (reference {refLoss.Loss:F6})");
    Check($"{kind} loss", Math.Abs(loss.Loss - refLoss.Loss) / Math.Max(1e-12, Math.Abs(refLoss.Loss)), 1e-5);
    Check($"{kind} gradient", MaxRelError(grad, refGrad), 1e-4);
}

var ceGrad = new float[rows * vocab];
var ceRefGrad = new float[rows * vocab];
var ce = fast.CrossEntropy(student, rows, vocab, targets, ceGrad, labelSmoothing: 0.1f);
var ceRef = reference.CrossEntropy(student, rows, vocab, targets, ceRefGrad, labelSmoothing: 0.1f);
Console.WriteLine($"     cross-entropy: loss {ce.Loss:F6} (reference {ceRef.Loss:F6})");
Check("cross-entropy loss", Math.Abs(ce.Loss - ceRef.Loss) / Math.Abs(ceRef.Loss), 1e-5);
Check("cross-entropy gradient", MaxRelError(ceGrad, ceRefGrad), 1e-4);

var balancer = new EmaBalancer(0.9, 1.0, 3.0);
double[] w = balancer.Step([2.0, 0.5]);
Console.WriteLine($"     EMA balancer weights after one step: [{w[0]:F4}, {w[1]:F4}]");
// one step: m̂ = |L|, so the weighted terms follow the ratio 1:3 and keep the unweighted sum 2.5
Check("balancer: weighted terms in the target ratio", Math.Abs(w[1] * 0.5 / (w[0] * 2.0) - 3.0), 1e-9);
Check("balancer: the unweighted sum's scale kept", Math.Abs(w[0] * 2.0 + w[1] * 0.5 - 2.5), 1e-9);

// ---- the forward of a tiny random LlamaModel ----
var config = new ModelConfig
{
    ModelType = "llama", HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
    VocabSize = 97, MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, TieWordEmbeddings = true,
};
var parameters = new TensorSet();
foreach (var (name, shape) in config.TensorShapes())
{
    var t = Tensor.Zeros(name, shape);
    bool norm = name.EndsWith("norm.weight", StringComparison.Ordinal);
    for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(norm ? 1 + 0.2 * (rng.NextDouble() - 0.5) : 0.3 * (rng.NextDouble() * 2 - 1));
    parameters.Add(t);
}
var model = new LlamaModel(config, parameters) { Threads = 1 };
const int batch = 2, seqLen = 7;
var tokens = Enumerable.Range(0, batch * seqLen).Select(_ => rng.Next(config.VocabSize)).ToArray();
float[] logits = model.Forward(tokens, batch, seqLen);
Perturb(logits);
double[] refLogits = new ReferenceModel(config, parameters).Forward(tokens, batch, seqLen, out _);
Console.WriteLine($"model: {model.WeightsDescription}; {parameters.ValueCount} parameters, logits [{batch}·{seqLen}, {config.VocabSize}], max |logit| {logits.Max(Math.Abs):F3}");
Check("forward against ReferenceModel", MaxRelError(logits, Array.ConvertAll(refLogits, v => (float)v)), 1e-4);

// the KV-cache path gives the same last-position logits as the full forward
var cache = model.CreateKvCache(batch, seqLen);
var first = new int[batch * (seqLen - 1)];
var last = new int[batch];
for (int b = 0; b < batch; b++)
{
    Array.Copy(tokens, b * seqLen, first, b * (seqLen - 1), seqLen - 1);
    last[b] = tokens[b * seqLen + seqLen - 1];
}
var prefill = new float[batch * config.VocabSize];
model.Prefill(cache, first, seqLen - 1, prefill);
var decoded = new float[batch * config.VocabSize];
model.DecodeStep(cache, last, decoded);
var fullLast = new float[batch * config.VocabSize];
for (int b = 0; b < batch; b++)
    Array.Copy(logits, ((long)b * seqLen + seqLen - 1) * config.VocabSize, fullLast, b * config.VocabSize, config.VocabSize);
Check("KV-cache decode step against the full forward", MaxRelError(decoded, fullLast), 1e-4);

Console.WriteLine(failures == 0 ? "consumer: all checks passed" : $"consumer: {failures} check(s) FAILED");
return failures == 0 ? 0 : 1;
