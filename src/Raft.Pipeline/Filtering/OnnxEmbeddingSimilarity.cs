using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// Sentence-embedding similarity on ONNX Runtime (CPU). The model folder holds <c>model.onnx</c> and a BERT
/// WordPiece <c>vocab.txt</c>. The model takes int64 <c>input_ids</c> and, when it declares them,
/// <c>attention_mask</c> and <c>token_type_ids</c> (all zeros); its output is <c>sentence_embedding</c> [batch, D]
/// when it has one, else its first output: [batch, T, D] token states mean-pooled over the attention mask, or
/// [batch, D] taken as is. The score is the cosine of the L2-normalised embeddings clamped to [0, 1]
/// (max(0, cos)). Texts are tokenised as Hugging Face's BERT tokenizer does (<see cref="BertWordPieceTokenizer"/>)
/// with [CLS]/[SEP] and truncated to <see cref="MaxTokens"/> tokens.
/// </summary>
public sealed class OnnxEmbeddingSimilarity : ISimilarity, IDisposable
{
    /// <summary>The model file name inside the folder.</summary>
    public const string ModelFile = "model.onnx";
    /// <summary>The vocabulary file name inside the folder.</summary>
    public const string VocabFile = "vocab.txt";
    /// <summary>The pooled output name preferred when the model has it.</summary>
    public const string SentenceEmbeddingOutput = "sentence_embedding";

    private readonly InferenceSession _session;
    private readonly BertWordPieceTokenizer _tokenizer;
    private readonly bool _hasMask, _hasTypes;
    private readonly string _output;
    private readonly bool _pool;
    private bool _disposed;

    /// <summary>
    /// Opens the model folder <paramref name="modelDirectory"/>. A missing folder, <c>vocab.txt</c> or
    /// <c>model.onnx</c> throws a <see cref="FileNotFoundException"/>/<see cref="DirectoryNotFoundException"/> naming
    /// the path; a model whose inputs or outputs do not fit throws an <see cref="InvalidDataException"/> naming the
    /// model and what is wrong.
    /// </summary>
    /// <param name="modelDirectory">The folder with model.onnx and vocab.txt.</param>
    /// <param name="maxTokens">The most tokens per text, [CLS] and [SEP] included (at least 2).</param>
    /// <param name="lowerCase">Whether the tokenizer lower-cases text (uncased models).</param>
    /// <param name="name">The measure's name in filter scores and reports (<c>similarity:NAME</c>).</param>
    public OnnxEmbeddingSimilarity(string modelDirectory, int maxTokens = 256, bool lowerCase = true, string name = DefaultName)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        ArgumentNullException.ThrowIfNull(modelDirectory);
        if (maxTokens < 2) throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, $"maxTokens must be at least 2, got {maxTokens}.");
        if (!Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"embedding model folder not found: {Path.GetFullPath(modelDirectory)}");
        string vocab = Path.Combine(modelDirectory, VocabFile);
        string model = Path.Combine(modelDirectory, ModelFile);
        if (!File.Exists(vocab)) throw new FileNotFoundException($"embedding model vocabulary not found: {Path.GetFullPath(vocab)}", vocab);
        if (!File.Exists(model)) throw new FileNotFoundException($"embedding model not found: {Path.GetFullPath(model)}", model);
        ModelPath = Path.GetFullPath(model);
        MaxTokens = maxTokens;
        _tokenizer = BertWordPieceTokenizer.FromFile(vocab, lowerCase);
        using (var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, InterOpNumThreads = 1 })
            _session = new InferenceSession(model, so);
        try
        {
            var ins = _session.InputMetadata;
            foreach (var (input, meta) in ins)
            {
                if (input is not ("input_ids" or "attention_mask" or "token_type_ids"))
                    throw new InvalidDataException($"{ModelPath}: unsupported model input '{input}' (expected input_ids, attention_mask, token_type_ids).");
                if (!meta.IsTensor || meta.ElementDataType != TensorElementType.Int64)
                    throw new InvalidDataException($"{ModelPath}: input '{input}' must be an int64 tensor, is {meta.ElementDataType}.");
            }
            if (!ins.ContainsKey("input_ids"))
                throw new InvalidDataException($"{ModelPath}: the model has no input 'input_ids' (it has: {string.Join(", ", ins.Keys)}).");
            _hasMask = ins.ContainsKey("attention_mask");
            _hasTypes = ins.ContainsKey("token_type_ids");
            var outs = _session.OutputMetadata;
            _output = outs.ContainsKey(SentenceEmbeddingOutput) ? SentenceEmbeddingOutput : _session.OutputNames[0];
            var om = outs[_output];
            if (!om.IsTensor || om.ElementDataType != TensorElementType.Float)
                throw new InvalidDataException($"{ModelPath}: output '{_output}' must be a float tensor, is {om.ElementDataType}.");
            int rank = om.Dimensions.Length;
            if (rank != 2 && rank != 3)
                throw new InvalidDataException($"{ModelPath}: output '{_output}' must have rank 2 [batch, D] or 3 [batch, T, D], has [{string.Join(", ", om.Dimensions)}].");
            _pool = rank == 3;
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>The full path of model.onnx.</summary>
    public string ModelPath { get; }

    /// <summary>The most tokens per text.</summary>
    public int MaxTokens { get; }

    /// <summary>The name of a model folder's measure unless another is given.</summary>
    public const string DefaultName = "onnx_embedding";

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public double Score(string candidate, string reference)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        var e = Embed([candidate, reference]);
        return Cosine01(e[0], e[1]);
    }

    /// <summary>max(0, cos) of two vectors (0 when either is all zeros), clamped to [0, 1].</summary>
    public static double Cosine01(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"vector lengths differ: {a.Length} and {b.Length}.", nameof(b));
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        if (na == 0 || nb == 0) return 0;
        return Math.Clamp(dot / (Math.Sqrt(na) * Math.Sqrt(nb)), 0.0, 1.0);
    }

    /// <summary>The L2-normalised embeddings of <paramref name="texts"/>, one batch through the model.</summary>
    public float[][] Embed(IReadOnlyList<string> texts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) return [];
        var ids = new List<int[]>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            ArgumentNullException.ThrowIfNull(texts[i], $"texts[{i}]");
            ids.Add(_tokenizer.Encode(texts[i], MaxTokens));
        }
        int batch = texts.Count, seq = ids.Max(t => t.Length);
        var inputIds = new long[batch * seq];
        var mask = new long[batch * seq];
        Array.Fill(inputIds, _tokenizer.PaddingId);
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < ids[b].Length; t++) { inputIds[b * seq + t] = ids[b][t]; mask[b * seq + t] = 1; }

        var names = new List<string> { "input_ids" };
        var values = new List<OrtValue>();
        IDisposableReadOnlyCollection<OrtValue>? results = null;
        try
        {
            long[] shape = [batch, seq];
            values.Add(OrtValue.CreateTensorValueFromMemory(inputIds, shape));
            if (_hasMask) { names.Add("attention_mask"); values.Add(OrtValue.CreateTensorValueFromMemory(mask, shape)); }
            if (_hasTypes) { names.Add("token_type_ids"); values.Add(OrtValue.CreateTensorValueFromMemory(new long[batch * seq], shape)); }
            using var run = new RunOptions();
            results = _session.Run(run, names, values, [_output]);
            var output = results[0];
            long[] dims = output.GetTensorTypeAndShape().Shape;
            var data = output.GetTensorDataAsSpan<float>();
            return _pool ? MeanPool(data, dims, mask, batch, seq) : Rows(data, dims, batch);
        }
        finally
        {
            results?.Dispose();
            foreach (var v in values) v.Dispose();
        }
    }

    private float[][] MeanPool(ReadOnlySpan<float> data, long[] dims, long[] mask, int batch, int seq)
    {
        if (dims.Length != 3 || dims[0] != batch || dims[1] != seq)
            throw new InvalidDataException($"{ModelPath}: output '{_output}' has shape [{string.Join(", ", dims)}], expected [{batch}, {seq}, D].");
        int d = (int)dims[2];
        var result = new float[batch][];
        for (int b = 0; b < batch; b++)
        {
            var sum = new double[d];
            double count = 0;
            for (int t = 0; t < seq; t++)
            {
                if (mask[b * seq + t] == 0) continue;
                count++;
                var row = data.Slice((b * seq + t) * d, d);
                for (int k = 0; k < d; k++) sum[k] += row[k];
            }
            result[b] = Normalize(sum, Math.Max(count, 1e-9));
        }
        return result;
    }

    private float[][] Rows(ReadOnlySpan<float> data, long[] dims, int batch)
    {
        if (dims.Length != 2 || dims[0] != batch)
            throw new InvalidDataException($"{ModelPath}: output '{_output}' has shape [{string.Join(", ", dims)}], expected [{batch}, D].");
        int d = (int)dims[1];
        var result = new float[batch][];
        for (int b = 0; b < batch; b++)
        {
            var v = new double[d];
            for (int k = 0; k < d; k++) v[k] = data[b * d + k];
            result[b] = Normalize(v, 1);
        }
        return result;
    }

    private static float[] Normalize(double[] v, double divisor)
    {
        double norm = 0;
        for (int k = 0; k < v.Length; k++) { v[k] /= divisor; norm += v[k] * v[k]; }
        norm = Math.Sqrt(norm);
        var r = new float[v.Length];
        if (norm > 0) for (int k = 0; k < v.Length; k++) r[k] = (float)(v[k] / norm);
        return r;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
    }
}
