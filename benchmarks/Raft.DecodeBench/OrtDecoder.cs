using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Raft.Model;

namespace Raft.DecodeBench;

/// <summary>
/// ONNX Runtime (CPU execution provider, all graph optimisations, <c>threads</c> intra-op threads) decoding the engine's
/// ONNX export with its KV cache: each step feeds the B next tokens with the previous step's <c>present.*</c> outputs as
/// <c>past_key_values.*</c> (no copy: the output OrtValues are passed back in), as a user of the exported model would.
/// </summary>
internal sealed class OrtDecoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly int _layers, _kv, _hd, _batch;
    private readonly string[] _outputNames;
    private List<OrtValue> _past = [];
    private int _pastLength;

    public OrtDecoder(string onnxDir, ModelConfig config, int batch, int threads)
    {
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        _session = new InferenceSession(Path.Combine(onnxDir, "model.onnx"), so);
        _layers = config.NumHiddenLayers; _kv = config.KvHeads; _hd = config.HeadDim; _batch = batch;
        _outputNames = ["logits", .. Enumerable.Range(0, _layers).SelectMany(i => new[] { $"present.{i}.key", $"present.{i}.value" })];
        Reset();
    }

    public int PastLength => _pastLength;

    /// <summary>Empties the cache (past length 0).</summary>
    public void Reset()
    {
        foreach (var v in _past) v.Dispose();
        _past = [];
        for (int i = 0; i < 2 * _layers; i++)
            _past.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [_batch, _kv, 0, _hd]));
        _pastLength = 0;
    }

    /// <summary>Runs <paramref name="t"/> tokens per sequence ([B·t]) after the cache; returns the logits OrtValue's data length.</summary>
    public long Step(int[] tokens, int t)
    {
        int total = _pastLength + t;
        var ids = new long[_batch * t]; var pos = new long[_batch * t]; var mask = new long[_batch * total];
        for (int b = 0; b < _batch; b++)
            for (int j = 0; j < t; j++) { ids[b * t + j] = tokens[b * t + j]; pos[b * t + j] = _pastLength + j; }
        Array.Fill(mask, 1L);
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValue.CreateTensorValueFromMemory(ids, [_batch, t]),
            ["attention_mask"] = OrtValue.CreateTensorValueFromMemory(mask, [_batch, total]),
            ["position_ids"] = OrtValue.CreateTensorValueFromMemory(pos, [_batch, t]),
        };
        for (int i = 0; i < _layers; i++) { inputs[$"past_key_values.{i}.key"] = _past[2 * i]; inputs[$"past_key_values.{i}.value"] = _past[2 * i + 1]; }
        using var ro = new RunOptions();
        var outputs = _session.Run(ro, inputs.Keys.ToArray(), inputs.Values.ToArray(), _outputNames);
        foreach (var v in inputs.Values) v.Dispose();   // the old past included
        long n = outputs[0].GetTensorTypeAndShape().ElementCount;
        _past = [.. outputs.Skip(1)];
        outputs[0].Dispose();
        _pastLength = total;
        return n;
    }

    /// <summary>The last step's logits are not kept; this reads a fresh step's last-position logits [B, V] (validation).</summary>
    public float[] StepLogits(int[] tokens, int vocab)
    {
        int total = _pastLength + 1;
        var ids = tokens.Select(x => (long)x).ToArray(); var pos = Enumerable.Repeat((long)_pastLength, _batch).ToArray(); var mask = Enumerable.Repeat(1L, _batch * total).ToArray();
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValue.CreateTensorValueFromMemory(ids, [_batch, 1]),
            ["attention_mask"] = OrtValue.CreateTensorValueFromMemory(mask, [_batch, total]),
            ["position_ids"] = OrtValue.CreateTensorValueFromMemory(pos, [_batch, 1]),
        };
        for (int i = 0; i < _layers; i++) { inputs[$"past_key_values.{i}.key"] = _past[2 * i]; inputs[$"past_key_values.{i}.value"] = _past[2 * i + 1]; }
        using var ro = new RunOptions();
        var outputs = _session.Run(ro, inputs.Keys.ToArray(), inputs.Values.ToArray(), _outputNames);
        foreach (var v in inputs.Values) v.Dispose();
        var logits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        _past = [.. outputs.Skip(1)];
        outputs[0].Dispose();
        _pastLength = total;
        return logits;
    }

    public void Dispose()
    {
        foreach (var v in _past) v.Dispose();
        _session.Dispose();
    }
}
