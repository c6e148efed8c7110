using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Training;

/// <summary>Reads a run's <see cref="Trainer.MetricsFile"/> (one <see cref="StepMetrics"/> JSON object per line).</summary>
public static class MetricsLog
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>
    /// The steps of <paramref name="path"/> in step order (a step logged twice keeps its last line); a malformed line
    /// raises <see cref="DataFormatException"/> with the file and line number.
    /// </summary>
    public static IReadOnlyList<StepMetrics> Read(string path)
    {
        var byStep = new SortedDictionary<int, StepMetrics>();
        int n = 0;
        foreach (string line in File.ReadLines(path))
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            StepMetrics? m;
            try { m = JsonSerializer.Deserialize<StepMetrics>(line, Json); }
            catch (JsonException e) { throw new DataFormatException(path, n, $"not a metrics record ({e.Message})", e); }
            if (m is null || m.Step < 1) throw new DataFormatException(path, n, "a metrics record needs \"step\" ≥ 1");
            byStep[m.Step] = m;
        }
        return byStep.Values.ToArray();
    }
}
