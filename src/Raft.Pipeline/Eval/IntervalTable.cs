using System.Text;

namespace Raft.Pipeline.Eval;

/// <summary>
/// A results table whose every cell is a proportion measured per seed and printed as its mean with a 95 % interval
/// (<see cref="Intervals.OfProportion"/>: Wilson's over the items for one seed, mean ± t·s/√n over several).
/// Rows (methods) and columns (metrics) print in the order first added.
/// </summary>
public sealed class IntervalTable
{
    private readonly List<string> _rows = [];
    private readonly List<string> _columns = [];
    private readonly Dictionary<(string Row, string Column), List<(int Successes, int N)>> _cells = [];

    /// <summary>Adds one seed's count to a cell (<paramref name="successes"/> of <paramref name="n"/> items).</summary>
    public void Add(string row, string column, int successes, int n)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(column);
        if (n < 1 || successes < 0 || successes > n)
            throw new ArgumentOutOfRangeException(nameof(successes), successes, $"cell ({row}, {column}): need 0 ≤ successes ≤ n and n ≥ 1, got {successes} of {n}.");
        if (!_rows.Contains(row)) _rows.Add(row);
        if (!_columns.Contains(column)) _columns.Add(column);
        if (!_cells.TryGetValue((row, column), out var list)) _cells[(row, column)] = list = [];
        list.Add((successes, n));
    }

    /// <summary>The rows, in order.</summary>
    public IReadOnlyList<string> Rows => _rows;

    /// <summary>The columns, in order.</summary>
    public IReadOnlyList<string> Columns => _columns;

    /// <summary>A cell's interval, or null when nothing was added to it.</summary>
    public Interval? Cell(string row, string column) =>
        _cells.TryGetValue((row, column), out var list) ? Intervals.OfProportion(list) : null;

    /// <summary>The table as Markdown: one line per row, each cell <c>mean [low, high]</c> in percent (— when empty).</summary>
    public string ToMarkdown(string rowHeader = "method")
    {
        var sb = new StringBuilder();
        sb.Append("| ").Append(rowHeader).Append(" | ").AppendJoin(" | ", _columns).Append(" |\n");
        sb.Append("|---|").Append(string.Concat(_columns.Select(_ => "---:|"))).Append('\n');
        foreach (string row in _rows)
            sb.Append("| ").Append(row).Append(" | ")
              .AppendJoin(" | ", _columns.Select(c => Cell(row, c)?.ToPercent() ?? "—")).Append(" |\n");
        return sb.ToString();
    }

    /// <summary>
    /// The method line printed under the table: what the brackets are (per seed Wilson's interval on the items, across
    /// seeds mean ± t₀.₉₇₅,ₙ₋₁·s/√n).
    /// </summary>
    public const string MethodNote =
        "Percent; brackets: 95 % interval (one seed: Wilson's score interval over the items; several seeds: mean ± t(0.975, n−1)·s/√n over the seeds).";
}
