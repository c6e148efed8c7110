using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Training;

/// <summary>
/// Reads a run's <see cref="Trainer.MetricsFile"/>: one <see cref="StepMetrics"/> JSON object per training step, and an
/// <see cref="EvalMetrics"/> object (the one with an <c>"eval"</c> key) per evaluation during training.
/// </summary>
public static class MetricsLog
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>
    /// The training steps of <paramref name="path"/> in step order (a step logged twice keeps its last line; evaluation
    /// lines are left out); a malformed line raises <see cref="DataFormatException"/> with the file and line number.
    /// </summary>
    public static IReadOnlyList<StepMetrics> Read(string path) => ReadLines<StepMetrics>(path, evals: false, m => m.Step);

    /// <summary>The evaluation lines of <paramref name="path"/> in step order (a step evaluated twice keeps its last line).</summary>
    public static IReadOnlyList<EvalMetrics> ReadEvals(string path) => ReadLines<EvalMetrics>(path, evals: true, m => m.Step);

    private static IReadOnlyList<T> ReadLines<T>(string path, bool evals, Func<T, int> stepOf) where T : class
    {
        var byStep = new SortedDictionary<int, T>();
        int n = 0;
        foreach (string line in File.ReadLines(path))
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            T? m;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new DataFormatException(path, n, "a metrics record must be a JSON object");
                if (doc.RootElement.TryGetProperty("eval", out _) != evals) continue;
                m = doc.RootElement.Deserialize<T>(Json);
            }
            catch (JsonException e) { throw new DataFormatException(path, n, $"not a metrics record ({e.Message})", e); }
            if (m is null || stepOf(m) < 1) throw new DataFormatException(path, n, "a metrics record needs \"step\" ≥ 1");
            byStep[stepOf(m)] = m;
        }
        return byStep.Values.ToArray();
    }
}
