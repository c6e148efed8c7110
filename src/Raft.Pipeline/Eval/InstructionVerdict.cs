namespace Raft.Pipeline.Eval;

/// <summary>One format instruction's verdict on one response.</summary>
/// <param name="Kind">The instruction's kind (<see cref="FormatInstruction.Kind"/>).</param>
/// <param name="Value">Its value, null for kinds without one.</param>
/// <param name="Strict">IFEval's strict verdict (<see cref="FormatInstruction.IsSatisfied"/>).</param>
/// <param name="Loose">IFEval's loose verdict (<see cref="FormatInstruction.IsSatisfiedLoose"/>: some loose variant of the response follows it).</param>
public sealed record InstructionVerdict(string Kind, string? Value, bool Strict, bool Loose)
{
    /// <summary>The verdicts of <paramref name="instruction"/> on <paramref name="response"/>.</summary>
    public static InstructionVerdict Of(FormatInstruction instruction, string response)
    {
        ArgumentNullException.ThrowIfNull(instruction);
        ArgumentNullException.ThrowIfNull(response);
        return new(instruction.Kind, instruction.Value, instruction.IsSatisfied(response), instruction.IsSatisfiedLoose(response));
    }
}
