using System.Text.Json.Serialization;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Training;

/// <summary>
/// One evaluation during training (<see cref="TrainOptions.EvalSet"/>): a line of <c>metrics.jsonl</c>,
/// <c>{"step": s, "eval": {"&lt;set name&gt;": {"accuracy": …, "format_compliance": …, "items": …}}}</c>, written after the
/// training line of the same step. <see cref="MetricsLog.Read"/> leaves these lines out; <see cref="MetricsLog.ReadEvals"/> reads them.
/// </summary>
public sealed record EvalMetrics
{
    /// <summary>The step after which the student was evaluated (1-based).</summary>
    [JsonPropertyName("step")] public int Step { get; init; }
    /// <summary>The scores per set, by set name (the file name without extension, as <c>raft eval</c> names it).</summary>
    [JsonPropertyName("eval")] public IReadOnlyDictionary<string, EvalSetMetrics> Eval { get; init; } = new Dictionary<string, EvalSetMetrics>();
    /// <summary>Seconds the evaluation took.</summary>
    [JsonPropertyName("eval_s")] public double Seconds { get; init; }
}

/// <summary>The scores of one set in an <see cref="EvalMetrics"/> line (the fields of <c>raft eval</c>'s report).</summary>
public sealed record EvalSetMetrics
{
    /// <summary>Correct answers over the items with a reference answer; null when none has one.</summary>
    [JsonPropertyName("accuracy")] public double? Accuracy { get; init; }
    /// <summary>Items that followed all their format instructions (strict) over the items with instructions; null when none has any.</summary>
    [JsonPropertyName("format_compliance")] public double? FormatCompliance { get; init; }
    /// <summary>Items of the set.</summary>
    [JsonPropertyName("items")] public int Items { get; init; }
    /// <summary>Items answered correctly.</summary>
    [JsonPropertyName("correct")] public int Correct { get; init; }
    /// <summary>Items with a reference answer.</summary>
    [JsonPropertyName("answer_items")] public int AnswerItems { get; init; }
    /// <summary>Items that followed all their format instructions (strict).</summary>
    [JsonPropertyName("compliant")] public int Compliant { get; init; }
    /// <summary>Items with format instructions.</summary>
    [JsonPropertyName("instruction_items")] public int InstructionItems { get; init; }

    /// <summary>The metrics of a scored set.</summary>
    public static EvalSetMetrics From(EvalSetResult r) => r is null ? throw new ArgumentNullException(nameof(r)) : new()
    {
        Accuracy = r.Accuracy, FormatCompliance = r.FormatCompliance, Items = r.N, Correct = r.Correct, AnswerItems = r.AnswerItems,
        Compliant = r.Compliant, InstructionItems = r.InstructionItems,
    };
}
