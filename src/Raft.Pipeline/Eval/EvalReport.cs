using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Model;

namespace Raft.Pipeline.Eval;

/// <summary>One set's line of a report.</summary>
/// <param name="Name">The set's name.</param>
/// <param name="N">The number of items.</param>
/// <param name="Accuracy">Answer accuracy in [0, 1], null when no item has an answer.</param>
/// <param name="FormatCompliance">Format compliance in [0, 1], null when no item has instructions.</param>
/// <param name="AnswerItems">Items with an answer.</param>
/// <param name="Correct">Items answered correctly.</param>
/// <param name="InstructionItems">Items with instructions.</param>
/// <param name="Compliant">Items following all their instructions.</param>
public sealed record EvalSetSummary(
    string Name,
    int N,
    double? Accuracy,
    double? FormatCompliance,
    int AnswerItems,
    int Correct,
    int InstructionItems,
    int Compliant)
{
    /// <summary>The summary of a scored set.</summary>
    public static EvalSetSummary From(EvalSetResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new(r.Name, r.N, r.Accuracy, r.FormatCompliance, r.AnswerItems, r.Correct, r.InstructionItems, r.Compliant);
    }
}

/// <summary>
/// An evaluation report: free metadata (checkpoint path, date, ...) and one line per set; written as
/// <c>report.json</c> (snake_case keys) and <c>report.md</c> (a markdown table).
/// </summary>
/// <param name="Sets">The sets, in report order.</param>
/// <param name="Metadata">Free key/value metadata (may be empty).</param>
public sealed record EvalReport(IReadOnlyList<EvalSetSummary> Sets, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The JSON file name.</summary>
    public const string JsonFile = "report.json";
    /// <summary>The markdown file name.</summary>
    public const string MarkdownFile = "report.md";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>A report of scored sets with optional metadata.</summary>
    public static EvalReport From(IEnumerable<EvalSetResult> results, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(results);
        return new EvalReport([.. results.Select(EvalSetSummary.From)],
            metadata ?? new Dictionary<string, string>());
    }

    /// <summary>The report as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(
        new ReportDto(new SortedDictionary<string, string>(Metadata.ToDictionary(), StringComparer.Ordinal), [.. Sets]), Json);

    /// <summary>Reads a report from its JSON text.</summary>
    public static EvalReport FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var dto = JsonSerializer.Deserialize<ReportDto>(json, Json) ?? throw new InvalidDataException("report JSON is null.");
        return new EvalReport(dto.Sets ?? [], dto.Metadata ?? new SortedDictionary<string, string>());
    }

    /// <summary>The report as markdown: metadata as a list, then a table of the sets.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("# Evaluation report\n\n");
        foreach (var (k, v) in Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            sb.Append("- **").Append(Escape(k)).Append("**: ").Append(Escape(v)).Append('\n');
        if (Metadata.Count > 0) sb.Append('\n');
        sb.Append("| Set | n | Accuracy | Format compliance |\n");
        sb.Append("|---|---:|---:|---:|\n");
        foreach (var s in Sets)
            sb.Append("| ").Append(Escape(s.Name)).Append(" | ").Append(s.N.ToString(CultureInfo.InvariantCulture))
              .Append(" | ").Append(Percent(s.Accuracy, s.Correct, s.AnswerItems))
              .Append(" | ").Append(Percent(s.FormatCompliance, s.Compliant, s.InstructionItems)).Append(" |\n");
        return sb.ToString();
    }

    /// <summary>
    /// Writes <c>report.json</c> and <c>report.md</c> (and <see cref="EvalAnswers.FileName"/> of <paramref name="answers"/>,
    /// when given) into <paramref name="directory"/> (created when missing) as one output
    /// (<see cref="AtomicFile.WriteAll"/>): a failure leaves the earlier files as they were, a fresh directory without
    /// any; <c>report.json</c>, the one readers open, is renamed in last.
    /// </summary>
    public void Write(string directory, IEnumerable<EvalSetResult>? answers = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        var files = new List<(string, string)>();
        if (answers is not null) files.Add((Path.Combine(directory, EvalAnswers.FileName), EvalAnswers.ToJsonl(answers)));
        files.Add((Path.Combine(directory, MarkdownFile), ToMarkdown()));
        files.Add((Path.Combine(directory, JsonFile), ToJson() + "\n"));
        AtomicFile.WriteTexts(files);
    }

    /// <summary>Reads <c>report.json</c> from <paramref name="directory"/>.</summary>
    public static EvalReport Load(string directory)
    {
        string path = Path.Combine(directory, JsonFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"evaluation report not found: {Path.GetFullPath(path)}", path);
        return FromJson(File.ReadAllText(path));
    }

    private static string Percent(double? value, int num, int den) =>
        value is double v ? string.Create(CultureInfo.InvariantCulture, $"{100 * v:F1}% ({num}/{den})") : "—";

    private static string Escape(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    private sealed record ReportDto(SortedDictionary<string, string>? Metadata, List<EvalSetSummary>? Sets);
}
