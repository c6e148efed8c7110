namespace Raft.Pipeline.Eval;

/// <summary>One line of a chart: a legend name and its points, drawn in order.</summary>
/// <param name="Name">The legend name.</param>
/// <param name="Points">The points; a non-finite coordinate breaks the line there.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points);
