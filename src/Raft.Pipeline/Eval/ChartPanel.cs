namespace Raft.Pipeline.Eval;

/// <summary>One panel of a chart: a title, axis labels and the lines drawn in it.</summary>
/// <param name="Title">The panel's title.</param>
/// <param name="XLabel">The horizontal axis label.</param>
/// <param name="YLabel">The vertical axis label.</param>
/// <param name="Series">The lines; a panel without any finite point says "no data".</param>
public sealed record ChartPanel(string Title, string XLabel, string YLabel, IReadOnlyList<ChartSeries> Series)
{
    /// <summary>
    /// A fixed vertical range (bottom, top) instead of one fitted to the data, e.g. (-2, 102) for a percentage, so that
    /// a line at 0 or 100 stays clear of the frame; null: fitted, with a margin.
    /// </summary>
    public (double Bottom, double Top)? YLimits { get; init; }
}
