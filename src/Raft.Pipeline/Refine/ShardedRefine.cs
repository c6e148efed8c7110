using System.Text.Json;
using Raft.Distributed;
using Raft.Model;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Refine;

/// <summary>
/// Stage 1 over the ranks of a process group: rank r refines a contiguous block of the examples (with their global
/// indices, so sampling is what a single process would do), and rank 0 gathers the blocks and writes the refined JSONL
/// in input order, byte for byte the file a single process writes with the same seed.
/// </summary>
public static class ShardedRefine
{
    /// <summary>
    /// Refines this rank's block of <paramref name="examples"/> and, on rank 0, writes every rank's results to
    /// <paramref name="outputPath"/> (atomically, as <see cref="JsonlWriter"/> does). Returns the summary of the whole run
    /// (counts summed over the ranks, the slowest rank's seconds) on every rank.
    /// </summary>
    /// <param name="refiner">This rank's refiner (same options on every rank).</param>
    /// <param name="world">The process group; a single process refines everything.</param>
    /// <param name="examples">Every example, in input order (the same list on every rank).</param>
    /// <param name="outputPath">The refined JSONL, written by rank 0 only.</param>
    /// <param name="progress">(done, total) of this rank's block.</param>
    /// <param name="summaryPath">Where rank 0 writes the summary (indented JSON) with the refined JSONL, as one output
    /// (<see cref="AtomicFile.WriteAll"/>: both whole, or neither new); null: not written.</param>
    public static RefineSummary Run(Refiner refiner, ICollective world, IReadOnlyList<DomainExample> examples, string outputPath,
        Action<int, int>? progress = null, string? summaryPath = null)
    {
        ArgumentNullException.ThrowIfNull(refiner);
        ArgumentNullException.ThrowIfNull(world);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(outputPath);
        var (start, count) = Collectives.Shard(examples.Count, world.Rank, world.WorldSize);
        var block = examples.Skip(start).Take(count).ToArray();
        var (refined, summary) = refiner.Run(block, firstIndex: start, progress: progress);
        if (world.WorldSize == 1)
        {
            Write(outputPath, stream => JsonlWriter.WriteLines(stream, refined), summaryPath, summary);
            return summary;
        }

        // This rank's lines exactly as JsonlWriter writes them, so rank 0 concatenates bytes (no JSON round trip).
        using var lines = new MemoryStream();
        foreach (var e in refined)
        {
            lines.Write(JsonSerializer.SerializeToUtf8Bytes(e, JsonlWriter.DefaultOptions));
            lines.WriteByte((byte)'\n');
        }
        var blocks = Collectives.AllGatherBytes(world, lines.ToArray());
        var summaries = Collectives.AllGatherBytes(world, JsonSerializer.SerializeToUtf8Bytes(summary));
        var total = Merge(summaries.Select(b => JsonSerializer.Deserialize<RefineSummary>(b)
                                                ?? throw new InvalidDataException("a rank sent an empty refine summary.")));
        if (world.Rank == 0)
            Write(outputPath, stream => { foreach (var b in blocks) stream.Write(b); }, summaryPath, total);
        world.Barrier();
        return total;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The refined JSONL and (when <paramref name="summaryPath"/> is given) its summary, as one output.</summary>
    private static void Write(string outputPath, Action<Stream> lines, string? summaryPath, RefineSummary summary)
    {
        var files = new List<(string, Action<Stream>)> { (outputPath, lines) };
        if (summaryPath is not null)
            files.Add((summaryPath, stream => { stream.Write(JsonSerializer.SerializeToUtf8Bytes(summary, Indented)); stream.WriteByte((byte)'\n'); }));
        AtomicFile.WriteAll(files);
    }

    private static RefineSummary Merge(IEnumerable<RefineSummary> parts)
    {
        var byRule = new SortedDictionary<string, int>(StringComparer.Ordinal);
        RefineSummary total = new();
        foreach (var p in parts)
        {
            foreach (var (rule, n) in p.RejectedByRule) byRule[rule] = byRule.GetValueOrDefault(rule) + n;
            total = total with
            {
                Examples = total.Examples + p.Examples, Candidates = total.Candidates + p.Candidates, Kept = total.Kept + p.Kept,
                Rejected = total.Rejected + p.Rejected, FusedRewrite = total.FusedRewrite + p.FusedRewrite, Fallback = total.Fallback + p.Fallback,
                Seconds = Math.Max(total.Seconds, p.Seconds),
            };
        }
        return total with { RejectedByRule = byRule };
    }
}
