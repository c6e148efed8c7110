using System.Globalization;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Demo.V2;

/// <summary>One target of issue #18, checked: its statement, whether it is met, and the numbers it was decided on.</summary>
/// <param name="Target">The target, in words.</param>
/// <param name="Met">Whether it is met.</param>
/// <param name="Numbers">The means it compares, in percentage points.</param>
public sealed record TargetCheck(string Target, bool Met, string Numbers)
{
    /// <summary>One line: <c>met</c> or <c>MISSED</c>, the target and its numbers.</summary>
    public override string ToString() => $"{(Met ? "met   " : "MISSED")} {Target}: {Numbers}";
}

/// <summary>
/// The targets of issue #18 (docs/demo.md, "The targets") and the pre-registered gap check, decided on the means of
/// a <see cref="DemoV2Runner.Table"/> (columns <c>domain</c>, <c>general</c>, <c>format strict</c>).
/// </summary>
public static class DemoV2Targets
{
    /// <summary>The table's targets: SFT domain ≥ 50; RAFT ≥ SFT + 15; RAFT's general and format losses ≤ ½ SFT's (which must lose both); RAFT ≥ SDFT and (≥ SDFT + 5 or general loss ≤ ¾ SDFT's).</summary>
    public static IReadOnlyList<TargetCheck> Check(IntervalTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        double M(string row, string col) => 100 * (table.Cell(row, col)?.Mean
            ?? throw new ArgumentException($"the table has no cell ({row}, {col}).", nameof(table)));
        double sftD = M("sft", "domain"), raftD = M("raft", "domain"), sdftD = M("sdft", "domain");
        double Loss(string row, string col) => M("base", col) - M(row, col);
        double sftG = Loss("sft", "general"), raftG = Loss("raft", "general"), sdftG = Loss("sdft", "general");
        double sftF = Loss("sft", "format strict"), raftF = Loss("raft", "format strict");
        return
        [
            new("SFT domain ≥ 50 %", sftD >= 50, F($"SFT {sftD:F1}")),
            new("RAFT domain ≥ SFT + 15 points", raftD >= sftD + 15, F($"RAFT {raftD:F1}, SFT {sftD:F1}")),
            new("RAFT's general-accuracy loss ≤ ½ SFT's (SFT loses)", sftG > 0 && raftG <= 0.5 * sftG, F($"RAFT loses {raftG:F1}, SFT {sftG:F1}")),
            new("RAFT's format (strict) loss ≤ ½ SFT's (SFT loses)", sftF > 0 && raftF <= 0.5 * sftF, F($"RAFT loses {raftF:F1}, SFT {sftF:F1}")),
            new("stage 2 adds value: RAFT domain ≥ SDFT's, and ≥ SDFT + 5 or general loss ≤ ¾ SDFT's",
                raftD >= sdftD && (raftD >= sdftD + 5 || raftG <= 0.75 * sdftG),
                F($"RAFT domain {raftD:F1}, SDFT {sdftD:F1}; general loss RAFT {raftG:F1}, SDFT {sdftG:F1}")),
        ];
    }

    /// <summary>The gap check: house-style SFT's general-accuracy loss ≤ ¾ of foreign SFT's and at least 5 points less (rows <c>sft_house</c>, <c>sft</c>).</summary>
    public static TargetCheck Gap(IntervalTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        double M(string row, string col) => 100 * (table.Cell(row, col)?.Mean
            ?? throw new ArgumentException($"the table has no cell ({row}, {col}).", nameof(table)));
        double house = M("base", "general") - M("sft_house", "general"), foreign = M("base", "general") - M("sft", "general");
        double houseF = M("base", "format strict") - M("sft_house", "format strict"), foreignF = M("base", "format strict") - M("sft", "format strict");
        return new("gap check: house-style SFT's general loss ≤ ¾ of foreign SFT's and ≥ 5 points less",
            house <= 0.75 * foreign && house <= foreign - 5,
            F($"general loss house {house:F1}, foreign {foreign:F1}; format loss house {houseF:F1}, foreign {foreignF:F1}"));
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
