namespace Raft.Pipeline.Eval;

/// <summary>One line of a chart: a legend name and its points, drawn in order.</summary>
/// <param name="Name">The legend name.</param>
/// <param name="Points">The points; a non-finite coordinate breaks the line there.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points)
{
    /// <summary>The index into <see cref="Charts.Palette"/> of the line's colour; null: the series' position in its panel.</summary>
    public int? ColorIndex { get; init; }
    /// <summary>Draws the line dashed (and its markers as squares) instead of solid with round markers.</summary>
    public bool Dashed { get; init; }
    /// <summary>
    /// The line's width in pixels (markers scale with it); a wider line drawn before a narrower one stays visible around
    /// it where the two coincide.
    /// </summary>
    public float LineWidth { get; init; } = 2;
}
