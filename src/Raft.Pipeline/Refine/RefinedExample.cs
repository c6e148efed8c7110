using System.Text.Json.Serialization;

namespace Raft.Pipeline.Refine;

/// <summary>One rewrite candidate with the filter's verdict.</summary>
public sealed record RefineCandidate
{
    /// <summary>The rewrite's text.</summary>
    [JsonPropertyName("text")] public required string Text { get; init; }
    /// <summary>Whether every rule kept it.</summary>
    [JsonPropertyName("kept")] public bool Kept { get; init; }
    /// <summary>The first rule that rejected it, and why (null when kept).</summary>
    [JsonPropertyName("reason")] public string? Reason { get; init; }
    /// <summary>The scores the rules measured, by rule name.</summary>
    [JsonPropertyName("scores")] public IReadOnlyDictionary<string, double> Scores { get; init; } = new Dictionary<string, double>();
}

/// <summary>
/// One line of the refined JSONL: the prompt, the original reference, the fused answer and where it came from
/// (<c>rewrite</c>: the best kept candidate; <c>reference</c>: no candidate survived, the reference is kept), and every
/// candidate with its verdict. <see cref="Prompt"/> and <see cref="Answer"/> (= the fused answer) make the file a valid
/// training set for <c>raft train</c> and <c>raft sft --data</c>.
/// </summary>
public sealed record RefinedExample
{
    /// <summary>The example's id.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>The user prompt.</summary>
    [JsonPropertyName("prompt")] public required string Prompt { get; init; }
    /// <summary>The fused answer.</summary>
    [JsonPropertyName("answer")] public required string Answer { get; init; }
    /// <summary>The original reference answer.</summary>
    [JsonPropertyName("reference")] public required string Reference { get; init; }
    /// <summary><c>rewrite</c> or <c>reference</c> (fallback).</summary>
    [JsonPropertyName("fused_from")] public required string FusedFrom { get; init; }
    /// <summary>The index of the chosen candidate (null on fallback).</summary>
    [JsonPropertyName("chosen")] public int? Chosen { get; init; }
    /// <summary>The input file and line the example came from.</summary>
    [JsonPropertyName("source")] public string? Source { get; init; }
    /// <summary>All candidates, in sampling order.</summary>
    [JsonPropertyName("candidates")] public IReadOnlyList<RefineCandidate> Candidates { get; init; } = [];
}

/// <summary>Counts of a refinement run.</summary>
public sealed record RefineSummary
{
    /// <summary>Examples refined.</summary>
    [JsonPropertyName("examples")] public int Examples { get; init; }
    /// <summary>Candidates sampled.</summary>
    [JsonPropertyName("candidates")] public int Candidates { get; init; }
    /// <summary>Candidates kept by every rule.</summary>
    [JsonPropertyName("kept")] public int Kept { get; init; }
    /// <summary>Candidates rejected.</summary>
    [JsonPropertyName("rejected")] public int Rejected { get; init; }
    /// <summary>Rejections by rule name.</summary>
    [JsonPropertyName("rejected_by_rule")] public IReadOnlyDictionary<string, int> RejectedByRule { get; init; } = new Dictionary<string, int>();
    /// <summary>Examples whose fused answer is a rewrite.</summary>
    [JsonPropertyName("fused_rewrite")] public int FusedRewrite { get; init; }
    /// <summary>Examples that fell back to their reference.</summary>
    [JsonPropertyName("fallback")] public int Fallback { get; init; }
    /// <summary>Wall seconds.</summary>
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
}
