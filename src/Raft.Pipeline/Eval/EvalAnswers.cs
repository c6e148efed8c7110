using System.Text.Json.Nodes;
using Raft.Model;

namespace Raft.Pipeline.Eval;

/// <summary>
/// The per-item answers of an evaluation, one JSON object a line (<c>answers.jsonl</c>): <c>set</c>, <c>id</c>,
/// <c>prompt</c> (as sent), <c>reference</c>, <c>answer</c> (the model's response), <c>extracted</c> and
/// <c>extracted_reference</c>, <c>correct</c> (null without a reference), <c>format_strict</c> and <c>format_loose</c>
/// (null without instructions) and <c>instructions</c>: each instruction's <c>kind</c>, <c>value</c>, <c>strict</c> and
/// <c>loose</c> verdict.
/// </summary>
public static class EvalAnswers
{
    /// <summary>The file name.</summary>
    public const string FileName = "answers.jsonl";

    private static readonly System.Text.Json.JsonSerializerOptions Json = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>One item's line (no newline).</summary>
    public static string Line(string set, EvalItemResult item)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(item);
        var instructions = new JsonArray();
        foreach (var v in item.Verdicts)
            instructions.Add(new JsonObject { ["kind"] = v.Kind, ["value"] = v.Value, ["strict"] = v.Strict, ["loose"] = v.Loose });
        var o = new JsonObject
        {
            ["set"] = set,
            ["id"] = item.Id,
            ["prompt"] = item.Prompt,
            ["reference"] = item.Reference,
            ["answer"] = item.Response,
            ["extracted"] = item.ExtractedResponse,
            ["extracted_reference"] = item.ExtractedReference,
            ["correct"] = item.Correct,
            ["format_strict"] = item.FormatOk,
            ["format_loose"] = item.FormatOkLoose,
            ["instructions"] = instructions,
        };
        return o.ToJsonString(Json);
    }

    /// <summary>The lines of every item of <paramref name="results"/>, in set order then item order, each ending in a newline.</summary>
    public static string ToJsonl(IEnumerable<EvalSetResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var sb = new System.Text.StringBuilder();
        foreach (var r in results)
            foreach (var item in r.Items)
                sb.Append(Line(r.Name, item)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Writes <c>answers.jsonl</c> into <paramref name="directory"/> (created when missing), atomically.</summary>
    public static void Write(string directory, IEnumerable<EvalSetResult> results)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        AtomicFile.WriteText(Path.Combine(directory, FileName), ToJsonl(results));
    }
}
