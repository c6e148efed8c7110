using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Eval;

/// <summary>One evaluation item: a prompt, optionally a reference answer and format instructions.</summary>
/// <param name="Id">The item id (field <c>id</c>, else <c>&lt;file name&gt;:&lt;line&gt;</c>).</param>
/// <param name="Prompt">The prompt sent to the model (instructions are not appended; see <see cref="FullPrompt"/>).</param>
/// <param name="Answer">The reference answer, or null when the item only checks format.</param>
/// <param name="Extractor">How final answers are pulled out of the response and the reference.</param>
/// <param name="Instructions">Format instructions the response must follow (may be empty).</param>
/// <param name="Source">The file the item came from.</param>
/// <param name="Line">Its 1-based line in that file.</param>
public sealed record EvalItem(
    string Id,
    string Prompt,
    string? Answer,
    IAnswerExtractor Extractor,
    IReadOnlyList<FormatInstruction> Instructions,
    string Source = "",
    int Line = 0)
{
    /// <summary>The prompt followed by each instruction's <see cref="FormatInstruction.Describe"/>, one per line.</summary>
    public string FullPrompt => Instructions.Count == 0
        ? Prompt
        : Prompt + "\n\n" + string.Join("\n", Instructions.Select(i => i.Describe()));
}
