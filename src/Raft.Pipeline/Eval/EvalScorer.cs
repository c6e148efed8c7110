namespace Raft.Pipeline.Eval;

/// <summary>The score of one response.</summary>
/// <param name="Id">The item id.</param>
/// <param name="Response">The model's response.</param>
/// <param name="Correct">Whether the extracted answers matched; null when the item has no reference answer.</param>
/// <param name="ExtractedResponse">The answer extracted from the response (null when none was found).</param>
/// <param name="ExtractedReference">The answer extracted from the reference (null when none).</param>
/// <param name="FormatOk">Whether every instruction was followed; null when the item has none.</param>
/// <param name="FailedInstructions">The kinds of the instructions not followed.</param>
public sealed record EvalItemResult(
    string Id,
    string Response,
    bool? Correct,
    string? ExtractedResponse,
    string? ExtractedReference,
    bool? FormatOk,
    IReadOnlyList<string> FailedInstructions)
{
    /// <summary>The prompt the model was sent (by default the item's <see cref="EvalItem.FullPrompt"/>; empty when unknown).</summary>
    public string Prompt { get; init; } = "";

    /// <summary>The item's reference answer, null when it has none.</summary>
    public string? Reference { get; init; }

    /// <summary>Each instruction's strict and loose verdict, in the item's order (empty when it has none).</summary>
    public IReadOnlyList<InstructionVerdict> Verdicts { get; init; } = [];

    /// <summary>Whether every instruction was followed loosely (IFEval's prompt-level loose score); null when the item has none.</summary>
    public bool? FormatOkLoose => Verdicts.Count == 0 ? null : Verdicts.All(v => v.Loose);
}

/// <summary>The scores of one evaluation set.</summary>
/// <param name="Name">The set's name.</param>
/// <param name="N">The number of items.</param>
/// <param name="AnswerItems">Items with a reference answer.</param>
/// <param name="Correct">Of those, how many were answered correctly.</param>
/// <param name="InstructionItems">Items with format instructions.</param>
/// <param name="Compliant">Of those, how many followed all their instructions.</param>
/// <param name="Items">Per-item details, in set order.</param>
public sealed record EvalSetResult(
    string Name,
    int N,
    int AnswerItems,
    int Correct,
    int InstructionItems,
    int Compliant,
    IReadOnlyList<EvalItemResult> Items)
{
    /// <summary>Correct / AnswerItems, or null when no item has an answer.</summary>
    public double? Accuracy => AnswerItems == 0 ? null : (double)Correct / AnswerItems;

    /// <summary>Compliant / InstructionItems, or null when no item has instructions.</summary>
    public double? FormatCompliance => InstructionItems == 0 ? null : (double)Compliant / InstructionItems;

    /// <summary>Items following all their instructions loosely (IFEval's loose score: each instruction by some loose variant of the response).</summary>
    public int CompliantLoose => Items.Count(i => i.FormatOkLoose == true);

    /// <summary>CompliantLoose / InstructionItems, or null when no item has instructions.</summary>
    public double? FormatComplianceLoose => InstructionItems == 0 ? null : (double)CompliantLoose / InstructionItems;
}

/// <summary>Scores model responses against an evaluation set.</summary>
public static class EvalScorer
{
    /// <summary>
    /// Scores <paramref name="responses"/> (one per item, same order). An item with an answer is correct when the
    /// extractor finds an answer in both the response and the reference and they are equal (ordinal); an item with
    /// instructions is compliant when all of them are satisfied.
    /// </summary>
    public static EvalSetResult Score(string name, IReadOnlyList<EvalItem> items, IReadOnlyList<string> responses)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(responses);
        if (items.Count != responses.Count)
            throw new ArgumentException($"set \"{name}\": {responses.Count} responses for {items.Count} items; expected one response per item.", nameof(responses));
        int answerItems = 0, correct = 0, instructionItems = 0, compliant = 0;
        var details = new List<EvalItemResult>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            string response = responses[i] ?? throw new ArgumentException($"set \"{name}\": responses[{i}] (item {item.Id}) is null.", nameof(responses));
            bool? ok = null;
            string? got = null, want = null;
            if (item.Answer != null)
            {
                answerItems++;
                got = item.Extractor.Extract(response);
                want = item.Extractor.Extract(item.Answer);
                ok = got != null && want != null && string.Equals(got, want, StringComparison.Ordinal);
                if (ok == true) correct++;
            }
            bool? formatOk = null;
            var verdicts = item.Instructions.Select(ins => InstructionVerdict.Of(ins, response)).ToArray();
            var failed = verdicts.Where(v => !v.Strict).Select(v => v.Kind).ToList();
            if (item.Instructions.Count > 0)
            {
                instructionItems++;
                formatOk = failed.Count == 0;
                if (formatOk == true) compliant++;
            }
            details.Add(new EvalItemResult(item.Id, response, ok, got, want, formatOk, failed)
            {
                Prompt = item.FullPrompt, Reference = item.Answer, Verdicts = verdicts,
            });
        }
        return new EvalSetResult(name, items.Count, answerItems, correct, instructionItems, compliant, details);
    }

    /// <summary>Scores <paramref name="responses"/> against <paramref name="set"/>.</summary>
    public static EvalSetResult Score(EvalSet set, IReadOnlyList<string> responses)
    {
        ArgumentNullException.ThrowIfNull(set);
        return Score(set.Name, set.Items, responses);
    }
}
